package rules

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Dest is one observed destination, as the analyzer knows it.
type Dest struct {
	// Host is the name the analyzer attached (DNS answer, TLS SNI or HTTP
	// Host), "" when none is known. Aliases are further names of the same
	// destination, such as the targets of a CNAME chain. Any of them may
	// match a host rule.
	Host    string
	Aliases []string
	IP      netip.Addr
	Port    uint16 // 0 when the protocol has none
	Proto   string // "tcp", "udp", "icmp"...
	Process string // comm of the process, "" when unknown
	// Resolver says the destination is a DNS server the app used.
	Resolver bool
}

// Verdict is the policy's answer for one destination.
type Verdict struct {
	Allowed bool
	// Rule says why: "FILE:LINE" of the deciding entry, or "loopback",
	// "resolver" for the defaults, or "no rule" when nothing matched.
	Rule string
}

// Policy is a parsed allowlist. It is immutable and safe for concurrent use.
type Policy struct {
	name           string
	allow, deny    []rule
	allowLoopback  bool
	allowResolvers bool
}

type portRange struct{ lo, hi uint16 }

// rule is one allow or deny entry. Every key that is set must match.
type rule struct {
	pos     string // FILE:LINE
	host    *pattern
	prefix  netip.Prefix // valid when set
	ports   []portRange  // empty: any port
	proto   string       // "" or "any": any protocol
	process string       // "": any process
	comment string
}

// maxPolicySize bounds what Parse reads; a hand-written policy is far smaller.
const maxPolicySize = 1 << 20

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return Parse(path, data)
}

// Name is the file name the policy was parsed under.
func (p *Policy) Name() string { return p.name }

// Check decides whether d is allowed. Deny entries are checked first and win
// over everything, then the loopback and resolver defaults, then allow
// entries in file order.
func (p *Policy) Check(d Dest) Verdict {
	names := make([]string, 0, 1+len(d.Aliases))
	for _, n := range append([]string{d.Host}, d.Aliases...) {
		if n != "" {
			names = append(names, normalizeName(n))
		}
	}
	d.IP = d.IP.Unmap()
	d.Proto = strings.ToLower(d.Proto)
	for i := range p.deny {
		if p.deny[i].match(d, names) {
			return Verdict{Allowed: false, Rule: p.deny[i].pos}
		}
	}
	if p.allowLoopback && d.IP.IsLoopback() {
		return Verdict{Allowed: true, Rule: "loopback"}
	}
	if p.allowResolvers && d.Resolver {
		return Verdict{Allowed: true, Rule: "resolver"}
	}
	for i := range p.allow {
		if p.allow[i].match(d, names) {
			return Verdict{Allowed: true, Rule: p.allow[i].pos}
		}
	}
	return Verdict{Allowed: false, Rule: "no rule"}
}

func (r *rule) match(d Dest, names []string) bool {
	if r.host != nil {
		ok := false
		for _, n := range names {
			if r.host.match(n) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if r.prefix.IsValid() && (!d.IP.IsValid() || !r.prefix.Contains(d.IP)) {
		return false
	}
	if r.proto != "" && r.proto != "any" && r.proto != d.Proto {
		return false
	}
	if r.process != "" && r.process != d.Process {
		return false
	}
	if len(r.ports) == 0 {
		return true
	}
	for _, pr := range r.ports {
		if d.Port >= pr.lo && d.Port <= pr.hi {
			return true
		}
	}
	return false
}

func (r portRange) String() string {
	if r.lo == r.hi {
		return strconv.Itoa(int(r.lo))
	}
	return fmt.Sprintf("%d-%d", r.lo, r.hi)
}
