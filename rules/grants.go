package rules

import "net/netip"

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Grant is what one allow entry permits at the address level, the only
// level a kernel hook sees: egress run --block turns grants into BPF map
// entries. A grant ignores the entry's process condition (the hook would
// need the comm), so enforcement is at most as wide as the entry without
// it; the report still applies the full rule.
type Grant struct {
	// Prefix limits the addresses; invalid when the entry names no cidr.
	Prefix netip.Prefix
	// Ports is empty when any port is allowed.
	Ports []PortRange
	// Proto is "" for any protocol, else "tcp", "udp"...
	Proto string
	// Rule is the entry's FILE:LINE.
	Rule string
}

func (r *rule) grant() Grant {
	g := Grant{Prefix: r.prefix, Rule: r.pos}
	if r.proto != "any" {
		g.Proto = r.proto
	}
	for _, pr := range r.ports {
		g.Ports = append(g.Ports, PortRange{Lo: pr.lo, Hi: pr.hi})
	}
	return g
}

// NameGrants returns the grants of the allow entries whose host pattern
// matches one of names (a queried name and its CNAME targets): what the
// addresses a resolver returns for them may be granted. denied reports that
// a deny entry with a matching host pattern and no other condition refuses
// the name outright.
func (p *Policy) NameGrants(names ...string) (grants []Grant, denied bool) {
	norm := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			norm = append(norm, normalizeName(n))
		}
	}
	matches := func(r *rule) bool {
		if r.host == nil {
			return false
		}
		for _, n := range norm {
			if r.host.match(n) {
				return true
			}
		}
		return false
	}
	for i := range p.deny {
		r := &p.deny[i]
		if matches(r) && !r.prefix.IsValid() && len(r.ports) == 0 && (r.proto == "" || r.proto == "any") && r.process == "" {
			return nil, true
		}
	}
	for i := range p.allow {
		if r := &p.allow[i]; matches(r) {
			grants = append(grants, r.grant())
		}
	}
	return grants, false
}

// AddrGrants returns the grants of the allow entries without a host
// pattern: the cidr entries (Parse refuses entries with neither).
func (p *Policy) AddrGrants() []Grant {
	var gs []Grant
	for i := range p.allow {
		if r := &p.allow[i]; r.host == nil {
			gs = append(gs, r.grant())
		}
	}
	return gs
}

// Defaults reports whether loopback destinations and the resolvers the app
// uses are allowed without an entry (allow_loopback, allow_resolvers).
func (p *Policy) Defaults() (loopback, resolvers bool) {
	return p.allowLoopback, p.allowResolvers
}

// Counts returns how many allow and deny entries the policy has.
func (p *Policy) Counts() (allow, deny int) { return len(p.allow), len(p.deny) }
