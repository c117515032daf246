package rules

import (
	"fmt"
	"net/netip"
	"strings"
)

// Allowed is an allow entry made in code from a destination that was seen,
// not parsed from a file: egress --baseline turns every destination of an
// earlier report into one.
type Allowed struct {
	// Host is a name, a "*.suffix" glob, or a name whose first label has
	// "*" for runs of digits (Shards); "" for an address entry.
	Host   string
	Shards bool
	// Prefix limits the addresses; for an address entry it is the address.
	Prefix  netip.Prefix
	Port    uint16 // 0: any port
	Proto   string // "tcp", "udp"; "": any
	Process string // "": any process
}

// Extend returns a policy that allows what p allows and also each entry
// of extra, after p's own entries, with reason as the reason Check gives
// (e.g. "baseline old.json"). p's deny entries still win. A nil p stands
// for the default policy: nothing allowed beyond loopback and resolvers.
func Extend(p *Policy, reason string, extra []Allowed) (*Policy, error) {
	out := &Policy{name: reason, allowLoopback: true, allowResolvers: true}
	if p != nil {
		*out = *p
		out.allow = append([]rule(nil), p.allow...)
	}
	for _, a := range extra {
		r := rule{pos: reason, prefix: a.Prefix, proto: strings.ToLower(a.Proto), process: a.Process}
		if a.Port != 0 {
			r.ports = []portRange{{a.Port, a.Port}}
		}
		switch {
		case a.Host != "" && a.Shards:
			n := normalizeName(a.Host)
			if !strings.Contains(n, ".") {
				return nil, fmt.Errorf("%s: name %q: a sharded name needs a suffix", reason, a.Host)
			}
			r.host = &pattern{name: n, shards: true}
		case a.Host != "":
			pat, err := parsePattern(a.Host)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", reason, err)
			}
			r.host = &pat
		case !a.Prefix.IsValid():
			return nil, fmt.Errorf("%s: an entry needs a name or an address", reason)
		}
		out.allow = append(out.allow, r)
	}
	return out, nil
}

// CheckHost says whether s can be a host pattern of an entry (a name or a
// "*.suffix" glob), and if not why.
func CheckHost(s string) error {
	_, err := parsePattern(s)
	return err
}
