package enforce

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// End bases of the records this package makes (docs/json-schema.md).
const (
	// BasisDropped: the cgroup catch-all dropped the packet under --block.
	BasisDropped = "blocked: egress run --block dropped the packet (cgroup catch-all: not a connect()/sendmsg() it could refuse)"
	// BasisPacket: a packet of a socket the connect/sendmsg hooks do not see.
	BasisPacket = "reported: egress run's cgroup catch-all saw the packet (ping, raw or other socket)"
	// BasisCall: a call the hooks let through and the tracepoints do not
	// see (UDP), reported for the policy.
	BasisCall = "reported: egress run's cgroup hooks saw the call (UDP)"
	// BasisChild: a child cgroup's TCP connection, followed by the sockops
	// program (the tracepoints follow the run's own cgroup only). A close
	// before the handshake within 100 ms of a single SYN is taken for a
	// refusal (RST), a later one for a timeout.
	BasisChild = "child-cgroup: egress run's sockops program followed the connection"
)

// Sent is the outcome of a call whose answer egress cannot see (a datagram
// or a packet was sent): the policy judges its destination.
const Sent = report.Sent

// MaxRecords bounds the distinct records kept; the calls past it are
// counted in one record named OtherDestinations.
const MaxRecords = 10000

// maxSeenKeys is the size of the kernel's seen map (bpf/block.bpf.c).
const maxSeenKeys = 16384

// OtherDestinations names the record that gathers calls past MaxRecords.
const OtherDestinations = "(other destinations)"

// Steering says where the DNS proxy listens, so connections the hooks
// steered there can be shown with the server the app asked for.
type Steering struct {
	Port uint16 // 0: DNS is not steered
}

type key struct {
	pid   int
	dst   netip.AddrPort
	proto uint8
	kind  event.BlockedKind
}

// Tally gathers the blocker's records. It is not safe for concurrent use.
type Tally struct {
	recs  map[key]*entry
	order []key
	// overRefused and overReported count the calls past MaxRecords
	// (stats.records_dropped), refused and let through apart.
	overRefused, overReported *report.Connection
	// overSeen are the reported records past MaxRecords whose repeats the
	// kernel counted (at most its seen map's 16,384 keys): Merge adds them.
	overSeen []event.Blocked
	// steered holds, per process, the DNS servers its TCP connects asked
	// for (KindSteered), in order. Bounded.
	steered map[int][]netip.AddrPort
	// Steering is where the proxy listens; set by the caller.
	Steering Steering
	// conns are the child cgroups' TCP connections by socket cookie, in
	// order; connsOver counts the steps of those past MaxRecords.
	conns     map[uint64]*report.Connection
	connOrder []uint64
	connsOver int
	// overDests holds the distinct destinations of the calls past MaxRecords
	// (the catch-all records say how many they stand for); bounded.
	overDests map[overDest]struct{}
}

// overDest is one destination of a catch-all record: refused and reported
// calls past MaxRecords are counted apart.
type overDest struct {
	dst      netip.AddrPort
	reported bool
}

type entry struct {
	b    event.Blocked
	conn report.Connection
}

// Add takes one record of the blocker.
func (t *Tally) Add(b event.Blocked) {
	pid, comm := 0, ""
	if b.Proc != nil {
		pid, comm = b.Proc.PID, b.Proc.Comm
	}
	if t.recs == nil {
		t.recs = map[key]*entry{}
	}
	if b.Kind == event.BlockedConn {
		t.conn(b)
		return
	}
	if b.Kind == event.BlockedSteered {
		if t.steered == nil {
			t.steered = map[int][]netip.AddrPort{}
		}
		if len(t.steered) < 4096 && len(t.steered[pid]) < 16 && !slices.Contains(t.steered[pid], b.Dst) {
			t.steered[pid] = append(t.steered[pid], b.Dst)
		}
		return
	}
	k := key{pid, b.Dst, b.Proto, b.Kind}
	if e := t.recs[k]; e != nil {
		e.conn.Count++
		return
	}
	tm := time.Unix(0, b.Time).UTC()
	if len(t.recs) >= MaxRecords {
		over := &t.overRefused
		outcome, basis := report.Rejected, report.BasisBlockedConnect
		if b.Kind == event.BlockedPacket && b.Refused {
			basis = BasisDropped
		} else if b.Kind != event.BlockedRefused {
			over, outcome, basis = &t.overReported, Sent, BasisCall
			if len(t.overSeen) < maxSeenKeys {
				t.overSeen = append(t.overSeen, b)
			}
		}
		if *over == nil {
			*over = &report.Connection{Host: OtherDestinations, NameSource: report.SourceNone, Proto: ProtoName(b.Proto),
				Start: tm, End: tm, Outcome: outcome, EndBasis: basis, SynTimesMS: []float64{}, FoldedBy: report.FoldOutcome}
		}
		(*over).Count++
		if t.overDests == nil {
			t.overDests = map[overDest]struct{}{}
		}
		if od := (overDest{b.Dst, over == &t.overReported}); len(t.overDests) < 1<<16 {
			if _, seen := t.overDests[od]; !seen {
				t.overDests[od] = struct{}{}
				(*over).Destinations++
			}
		}
		(*over).End = tm
		return
	}
	c := report.Connection{
		NameSource: report.SourceNone,
		DstIP:      b.Dst.Addr(), DstPort: b.Dst.Port(), Proto: ProtoName(b.Proto),
		Start: tm, End: tm, SynTimesMS: []float64{}, Count: 1,
		Loopback: b.Dst.Addr().IsLoopback(),
	}
	if pid > 0 {
		c.PID, c.Comm = &pid, &comm
	}
	switch {
	case b.Kind == event.BlockedRefused:
		c.Outcome, c.EndBasis = report.Rejected, report.BasisBlockedConnect
	case b.Kind == event.BlockedPacket && b.Refused:
		c.Outcome, c.EndBasis = report.Rejected, BasisDropped
	case b.Kind == event.BlockedPacket:
		c.Outcome, c.EndBasis = Sent, BasisPacket
	default:
		c.Outcome, c.EndBasis = Sent, BasisCall
	}
	t.recs[k] = &entry{b: b, conn: c}
	t.order = append(t.order, k)
}

// conn follows one step of a child cgroup's TCP connection.
func (t *Tally) conn(b event.Blocked) {
	pid, comm := 0, ""
	if b.Proc != nil {
		pid, comm = b.Proc.PID, b.Proc.Comm
	}
	tm := time.Unix(0, b.Time).UTC()
	c := t.conns[b.Cookie]
	if c == nil {
		if t.conns == nil {
			t.conns = map[uint64]*report.Connection{}
		}
		if len(t.conns) >= MaxRecords {
			t.connsOver++
			return
		}
		c = &report.Connection{PID: &pid, Comm: &comm, NameSource: report.SourceNone,
			DstIP: b.Dst.Addr(), DstPort: b.Dst.Port(), Proto: "tcp",
			Start: tm, End: tm, Attempts: 1, SynTimesMS: []float64{0}, Outcome: report.Pending,
			EndBasis: BasisChild, Count: 1}
		t.conns[b.Cookie] = c
		t.connOrder = append(t.connOrder, b.Cookie)
	}
	ms := func() float64 { return float64(tm.Sub(c.Start).Microseconds()) / 1000 }
	switch b.ConnOp {
	case event.ConnRetransmit:
		c.Attempts++
		if len(c.SynTimesMS) < 16 {
			c.SynTimesMS = append(c.SynTimesMS, ms())
		}
	case event.ConnEstablished:
		c.Outcome = report.Established
	case event.ConnClosed:
		c.Outcome = report.Timeout
		if c.Attempts == 1 && tm.Sub(c.Start) < 100*time.Millisecond {
			c.Outcome = report.Refused
		}
		c.Inferred = true
	}
	if b.ConnOp != event.ConnSYN {
		c.End = tm
		c.BlockedMS = ms()
	}
}

// unsteer shows a TCP connection the hooks steered to the proxy with the
// DNS server its process asked for (the first, when it asked several).
func (t *Tally) unsteer(rc *report.Connection) {
	if t.Steering.Port == 0 || rc.Proto != "tcp" || rc.DstPort != t.Steering.Port || rc.PID == nil ||
		!rc.DstIP.Unmap().IsLoopback() {
		return
	}
	servers := t.steered[*rc.PID]
	if len(servers) == 0 {
		return
	}
	s := servers[0]
	rc.DstIP, rc.DstPort = s.Addr(), s.Port()
	rc.Loopback = s.Addr().IsLoopback()
}

// ProtoName names an IP protocol as the report and the rules do.
func ProtoName(p uint8) string {
	switch p {
	case event.ProtoTCP:
		return "tcp"
	case event.ProtoUDP:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return fmt.Sprintf("ip-proto-%d", p)
}

// Counter tells how many times a reported (not refused) call happened in
// all, as the kernel counted it: internal/enforce/block's Blocker.Seen.
type Counter func(*event.Blocked) uint64

// Merge puts the tally into r. A refused TCP connect is already a rejected
// call in the analyzer's view (the connect() failed): it gets the
// blocker's reason. The other records are added, named by the proxy's
// answers where one gave their address. Lookups the proxy refused get
// their reason too. seen may be nil.
func (t *Tally) Merge(r *report.Report, names map[netip.Addr]string, refused map[string]bool, seen Counter) {
	for i := range r.Lookups {
		if l := &r.Lookups[i]; l.Outcome == report.DNSRefused && refused[strings.TrimSuffix(l.Name, ".")] {
			l.EndBasis = report.BasisBlockedLookup
		}
	}
	for i := range r.Connections {
		// A refused connect() never got a source address: SrcIP is
		// invalid, "" on the wire.
		t.unsteer(&r.Connections[i])
	}
	added := false
	for _, ck := range t.connOrder {
		c := t.conns[ck]
		if name, ok := names[c.DstIP.Unmap()]; ok {
			c.Host, c.NameSource = name, report.SourceDNS
		}
		r.Connections = append(r.Connections, *c)
		added = true
	}
	if t.connsOver > 0 {
		r.Stats.RecordsDropped += uint64(t.connsOver)
		r.Hints = append(r.Hints, report.ChildStepsFoldedHint(t.connsOver, MaxRecords))
	}
	if len(t.order) == 0 && t.overRefused == nil && t.overReported == nil {
		if added {
			slices.SortStableFunc(r.Connections, func(a, b report.Connection) int { return a.Start.Compare(b.Start) })
		}
		return
	}
	refusedCalls, reported := 0, 0
	for _, k := range t.order {
		e := t.recs[k]
		c := &e.conn
		if k.kind != event.BlockedRefused && seen != nil {
			c.Count = max(c.Count, int(seen(&e.b)))
		}
		if c.Outcome == report.Rejected {
			refusedCalls += c.Count
		} else {
			reported += c.Count
		}
		matched := false
		if k.kind == event.BlockedRefused {
			for i := range r.Connections {
				rc := &r.Connections[i]
				if rc.Outcome == report.Rejected && rc.Proto == c.Proto && rc.DstIP == c.DstIP && rc.DstPort == c.DstPort &&
					rc.PID != nil && *rc.PID == k.pid && rc.Attempts <= 1 {
					rc.EndBasis = report.BasisBlockedConnect
					matched = true
				}
			}
		}
		if matched {
			continue
		}
		if name, ok := names[c.DstIP.Unmap()]; ok {
			c.Host, c.NameSource = name, report.SourceDNS
		}
		r.Connections = append(r.Connections, *c)
		added = true
	}
	if o := t.overReported; o != nil && seen != nil {
		for i := range t.overSeen {
			o.Count += int(seen(&t.overSeen[i])) - 1 // the record itself is counted
		}
	}
	for _, o := range []*report.Connection{t.overRefused, t.overReported} {
		if o == nil {
			continue
		}
		if o.Outcome == report.Rejected {
			refusedCalls += o.Count
		}
		r.Stats.RecordsDropped += uint64(o.Count)
		r.Connections = append(r.Connections, *o)
		added = true
		r.Hints = append(r.Hints, report.BlockedFoldedHint(o.Count, MaxRecords, o.Outcome, OtherDestinations))
	}
	if added {
		slices.SortStableFunc(r.Connections, func(a, b report.Connection) int { return a.Start.Compare(b.Start) })
	}
	if refusedCalls > 0 {
		r.Hints = append(r.Hints, report.BlockedHint(refusedCalls))
	}
}

// RuleNoHost is the rule of a lookup no host entry allows.
const RuleNoHost = "no host rule allows this name (a lookup is a call: DNS carries data out)"

// JudgeLookups marks each lookup of a name (or CNAME chain) no host entry
// allows, or a deny entry refuses, as unexpected: a lookup carries data to
// the resolver and beyond, whatever cidr entries allow, so it is a call of
// its own. hasHost reports whether a host entry allows one of the names.
func JudgeLookups(r *report.Report, hasHost func(names ...string) bool) int {
	n := 0
	for i := range r.Lookups {
		l := &r.Lookups[i]
		if hasHost(append([]string{l.Name}, l.CNAMEs...)...) {
			continue
		}
		unexpected := false
		v := &report.Verdict{Expected: &unexpected, Rule: RuleNoHost}
		if l.Verdict != nil {
			v.Catalog = l.Verdict.Catalog
		}
		l.Verdict = v
		n++
	}
	return n
}

// HasHostGrant reports whether a host entry of pol allows one of names (a
// name and its CNAME chain) and no deny entry refuses them.
func HasHostGrant(pol *rules.Policy, names ...string) bool {
	grants, denied := pol.NameGrants(names...)
	return !denied && len(grants) > 0
}
