package enforce

// What egress run --block enforces of a --rules policy: the DNS proxy's
// decisions and the kernel's allow map.

import (
	"net/netip"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/enforce/block"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// DNSPolicy decides for the DNS proxy: with enforcement, names the policy
// cannot allow are refused before they are forwarded, and the addresses
// of allowed names enter the kernel's allow map before the answer goes out.
type DNSPolicy struct {
	Policy  *rules.Policy
	Enforce bool
	// Blocker receives the addresses of allowed names; set it before the
	// proxy serves.
	Blocker *block.Blocker
}

func (d *DNSPolicy) Ask(name string) bool {
	if !d.Enforce {
		return true
	}
	// A lookup is a call: a name no host entry allows is refused before it
	// leaves, whatever cidr entries allow (docs/rules.md).
	return HasHostGrant(d.Policy, name)
}

func (d *DNSPolicy) Answered(name string, cnames []string, addrs []netip.Addr) bool {
	if !d.Enforce {
		return true
	}
	grants, denied := d.Policy.NameGrants(append([]string{name}, cnames...)...)
	if denied {
		return false
	}
	if len(addrs) == 0 {
		return len(grants) > 0 // NODATA, NXDOMAIN or a CNAME only: nothing to open
	}
	ok := false
	for _, a := range addrs {
		for _, gr := range grants {
			if gr.Prefix.IsValid() && !gr.Prefix.Contains(a.Unmap()) {
				continue
			}
			if err := AllowGrant(d.Blocker, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), gr); err != nil {
				return false // cannot open the way: refuse rather than let the app hang
			}
			ok = true
		}
	}
	return ok
}

// maxRangePorts is the widest port range entered port by port; a wider
// range becomes "any port" in the kernel map (the report still applies
// the exact range).
const maxRangePorts = 1024

// AllowAddrGrants enters the policy's address grants (cidr entries) into
// the kernel's allow map.
func AllowAddrGrants(b *block.Blocker, pol *rules.Policy) error {
	for _, gr := range pol.AddrGrants() {
		if err := AllowGrant(b, gr.Prefix, gr); err != nil {
			return err
		}
	}
	return nil
}

// AllowGrant enters one grant for prefix into the kernel's allow map.
func AllowGrant(b *block.Blocker, prefix netip.Prefix, gr rules.Grant) error {
	var proto uint8
	switch gr.Proto {
	case "tcp":
		proto = event.ProtoTCP
	case "udp":
		proto = event.ProtoUDP
	case "":
	default:
		return nil // ICMP and others are not connect()ed: nothing to open
	}
	if len(gr.Ports) == 0 {
		return b.Allow(prefix, 0, proto)
	}
	for _, pr := range gr.Ports {
		if int(pr.Hi)-int(pr.Lo) >= maxRangePorts {
			return b.Allow(prefix, 0, proto)
		}
		for p := int(pr.Lo); p <= int(pr.Hi); p++ {
			if err := b.Allow(prefix, uint16(p), proto); err != nil {
				return err
			}
		}
	}
	return nil
}

// Protocols adds what the catch-all counted, by protocol, to r's hints.
func Protocols(r *report.Report, counts []block.ProtoCount) {
	for _, pc := range counts {
		r.Hints = append(r.Hints, report.UnhookedPacketsHint(ProtoName(pc.Proto), pc.Packets, pc.Dropped))
	}
}
