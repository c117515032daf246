package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// normalizeName lowercases a DNS name and drops the trailing root dot, so
// "API.Example.COM." and "api.example.com" compare equal.
func normalizeName(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// pattern is a parsed host pattern: an exact name, or a "*.suffix" glob that
// matches names strictly below suffix (never suffix itself).
type pattern struct {
	name string // normalized; for a glob, the suffix without "*."
	glob bool
	// shards: each "*" in the first label of name stands for a run of
	// digits ("resultssa*.blob.example" matches resultssa0 to
	// resultssa19). Never parsed from a policy file: baselines make them.
	shards bool
}

func (p pattern) String() string {
	if p.glob {
		return "*." + p.name
	}
	return p.name
}

func (p pattern) match(host string) bool {
	switch {
	case p.glob:
		return len(host) > len(p.name)+1 && strings.HasSuffix(host, p.name) && host[len(host)-len(p.name)-1] == '.'
	case p.shards:
		pf, prest, _ := strings.Cut(p.name, ".")
		hf, hrest, _ := strings.Cut(host, ".")
		return prest == hrest && matchDigitRuns(pf, hf)
	}
	return host == p.name
}

// matchDigitRuns matches label against pat, where each "*" of pat stands
// for one or more digits.
func matchDigitRuns(pat, label string) bool {
	for {
		star := strings.IndexByte(pat, '*')
		if star < 0 {
			return pat == label
		}
		if !strings.HasPrefix(label, pat[:star]) {
			return false
		}
		label, pat = label[star:], pat[star+1:]
		n := 0
		for n < len(label) && label[n] >= '0' && label[n] <= '9' {
			n++
		}
		if n == 0 {
			return false
		}
		label = label[n:]
	}
}

// specificity orders patterns: an exact name beats any glob, a longer glob
// suffix beats a shorter one.
func (p pattern) specificity() int {
	if p.glob {
		return len(p.name)
	}
	return 1 << 16
}

// parsePattern validates a host pattern. The error text is the hint shown
// after FILE:LINE.
func parsePattern(s string) (pattern, error) {
	if _, err := netip.ParseAddr(s); err == nil {
		return pattern{}, fmt.Errorf("host %q is an IP address (use cidr: %s/%d)", s, s, netip.MustParseAddr(s).BitLen())
	}
	n := normalizeName(s)
	glob := false
	if rest, ok := strings.CutPrefix(n, "*."); ok {
		glob, n = true, rest
	}
	switch {
	case n == "*" || (n == "" && glob):
		return pattern{}, fmt.Errorf("host %q matches every name (list the names, or use cidr: 0.0.0.0/0 and cidr: ::/0 to allow everything)", s)
	case n == "":
		return pattern{}, fmt.Errorf("host is empty (write a name like api.example.com or a glob like *.example.com)")
	case strings.Contains(n, "*"):
		return pattern{}, fmt.Errorf("host %q has a * that is not a leading \"*.\" (only globs like *.example.com are supported)", s)
	case len(n) > 253:
		return pattern{}, fmt.Errorf("host is longer than 253 characters (DNS names cannot be)")
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return pattern{}, fmt.Errorf("host %q has an empty or over-long label (labels are 1-63 characters between dots)", s)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return pattern{}, fmt.Errorf("host %q has the character %q (names use letters, digits, - and _)", s, c)
			}
		}
	}
	return pattern{name: n, glob: glob}, nil
}

func parseCIDRLoose(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	return p, err != nil
}
