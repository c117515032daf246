package rules

import (
	"net/netip"

	"github.com/egress-dev/egress/report"
)

// Resolvers is the set of DNS servers the lookups of r asked.
func Resolvers(r *report.Report) map[netip.Addr]bool {
	resolvers := map[netip.Addr]bool{}
	for _, l := range r.Lookups {
		if l.Server.Addr().IsValid() {
			resolvers[l.Server.Addr()] = true
		}
	}
	return resolvers
}

// DestOf is connection c as the policy judges it; resolvers (from
// Resolvers) marks the DNS servers the app used.
func DestOf(c *report.Connection, resolvers map[netip.Addr]bool) Dest {
	d := Dest{Host: c.Host, IP: c.DstIP, Port: c.DstPort, Proto: c.Proto, Resolver: resolvers[c.DstIP] && c.DstPort == 53}
	if c.Comm != nil {
		d.Process = *c.Comm
	}
	return d
}
