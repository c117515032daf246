package pipeline

import (
	"net/netip"
	"strings"

	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/enforce"
	"github.com/egress-dev/egress/report"
)

// blockedCalls collects what egress run's cgroup programs refused or
// reported (event.Blocked, tallied by package enforce) and what the DNS
// proxy's messages say: the names it answered for addresses, to name
// those calls, and the names it refused.
type blockedCalls struct {
	tally   enforce.Tally
	names   map[netip.Addr]string // address -> name the proxy answered for it
	refused map[string]bool       // names the proxy refused
	msg     dnsmsg.Msg
}

// maxBlockedNames bounds the names kept.
const maxBlockedNames = 1 << 16

func (b *blockedCalls) add(e *event.Blocked) { b.tally.Add(*e) }

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

// refusedLookup says whether l is a lookup the proxy refused.
func (b *blockedCalls) refusedLookup(l *report.Lookup) bool {
	return l.Outcome == report.DNSRefused && b.refused[strings.TrimSuffix(l.Name, ".")]
}

// merge puts the tally into r (enforce.Tally.Merge).
func (b *blockedCalls) merge(r *report.Report, seen enforce.Counter, steering enforce.Steering) {
	b.tally.Steering = steering
	b.tally.Merge(r, b.names, b.refused, seen)
}
