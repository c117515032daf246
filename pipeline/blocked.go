package pipeline

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// blockedCalls collects what egress run --block refused: calls refused in
// the kernel (event.Blocked) and names the DNS proxy refused, with the
// names the proxy's answers gave to addresses, to name refused calls.
type blockedCalls struct {
	calls   map[blockedKey]*report.Connection
	order   []blockedKey
	names   map[netip.Addr]string // address -> name the proxy answered for it
	refused map[string]bool       // names the proxy refused
	msg     dnsmsg.Msg
}

type blockedKey struct {
	pid   int
	dst   netip.AddrPort
	proto uint8
}

// Bounds: distinct refused calls kept (repeats are counted), and names.
const (
	maxBlocked      = 10000
	maxBlockedNames = 1 << 16
)

func (b *blockedCalls) add(e *event.Blocked) {
	pid, comm := 0, ""
	if e.Proc != nil {
		pid, comm = e.Proc.PID, e.Proc.Comm
	}
	k := blockedKey{pid, e.Dst, e.Proto}
	if c := b.calls[k]; c != nil {
		c.Count++
		return
	}
	if b.calls == nil {
		b.calls = map[blockedKey]*report.Connection{}
	}
	if len(b.calls) >= maxBlocked {
		return
	}
	proto := "tcp"
	if e.Proto == event.ProtoUDP {
		proto = "udp"
	}
	t := time.Unix(0, e.Time).UTC()
	b.calls[k] = &report.Connection{
		PID: &pid, Comm: &comm, NameSource: report.SourceNone,
		DstIP: e.Dst.Addr(), DstPort: e.Dst.Port(), Proto: proto,
		Start: t, End: t, Outcome: report.Rejected, EndBasis: report.BasisBlockedConnect,
		SynTimes: []report.Duration{}, Count: 1,
	}
	b.order = append(b.order, k)
}

// dns learns from a message the proxy relayed: the addresses its answers
// name, and the names it refused.
func (b *blockedCalls) dns(d *event.DNS) {
	if !d.Response {
		return
	}
	m := &b.msg
	if m.Unpack(d.Msg); !m.QuestionOK() {
		return
	}
	name := strings.TrimSuffix(string(m.QName), ".")
	if d.Refused {
		if b.refused == nil {
			b.refused = map[string]bool{}
		}
		if len(b.refused) < maxBlockedNames {
			b.refused[name] = true
		}
		return
	}
	for _, rr := range m.Answers {
		if !rr.Addr.IsValid() {
			continue
		}
		if b.names == nil {
			b.names = map[netip.Addr]string{}
		}
		if len(b.names) < maxBlockedNames {
			b.names[rr.Addr.Unmap()] = name
		}
	}
}

// refusedConnect says whether c is a TCP connect the blocker refused
// (the analyzer saw it fail at once).
func (b *blockedCalls) refusedConnect(c *report.Connection) bool {
	if c.Outcome != report.Rejected || c.PID == nil || c.Attempts > 1 {
		return false
	}
	for _, k := range b.order {
		bc := b.calls[k]
		if bc.Proto == c.Proto && bc.DstIP == c.DstIP && bc.DstPort == c.DstPort && *c.PID == k.pid {
			return true
		}
	}
	return false
}

// refusedLookup says whether l is a lookup the proxy refused.
func (b *blockedCalls) refusedLookup(l *report.Lookup) bool {
	return l.Outcome == report.DNSRefused && b.refused[strings.TrimSuffix(l.Name, ".")]
}

// merge marks what was refused in r, and returns the refused calls it
// added (the tracepoints did not see them). A refused TCP connect is already a
// rejected call in the analyzer's view (the connect() failed): it gets the
// blocker's reason. Refused UDP sends, which the tracepoints do not see,
// are added, named by the proxy's answers where one gave their address.
// Lookups the proxy refused get their reason too.
func (b *blockedCalls) merge(r *report.Report) (added []report.Connection) {
	for i := range r.Lookups {
		if l := &r.Lookups[i]; b.refusedLookup(l) {
			l.EndBasis = report.BasisBlockedLookup
		}
	}
	if len(b.order) == 0 {
		return nil
	}
	n := 0
	for _, k := range b.order {
		c := b.calls[k]
		n += c.Count
		matched := false
		for i := range r.Connections {
			rc := &r.Connections[i]
			if rc.Outcome == report.Rejected && rc.Proto == c.Proto && rc.DstIP == c.DstIP && rc.DstPort == c.DstPort &&
				rc.PID != nil && *rc.PID == k.pid && rc.Attempts <= 1 {
				rc.EndBasis = report.BasisBlockedConnect
				matched = true
			}
		}
		if matched {
			continue
		}
		if name, ok := b.names[c.DstIP.Unmap()]; ok {
			c.Host, c.NameSource = name, report.SourceDNS
		}
		r.Connections = append(r.Connections, *c)
		added = append(added, *c)
	}
	if len(added) > 0 {
		slices.SortStableFunc(r.Connections, func(a, b report.Connection) int { return a.Start.Compare(b.Start) })
	}
	r.Hints = append(r.Hints, report.BlockedHint(n))
	return added
}
