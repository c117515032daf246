package analyze

import (
	"bytes"
	"net/netip"
	"sort"
	"time"

	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// Analyzer consumes observations and produces a report. It is not safe for
// concurrent use: one goroutine feeds it, then calls Finish once.
type Analyzer struct {
	cfg Config

	flows map[flowKey]*flow
	// freeFlows are finished flows, with their attempts, to reuse (tcp.go).
	freeFlows []*flow
	// noReuse allocates every flow and lookup anew (tests compare it with
	// reuse: a report must not depend on it).
	noReuse  bool
	reused   int // flows and lookups taken from the free lists
	orphans  map[flowKey]orphanSynAck
	lookups  map[dnsKey][]*lookup
	nLookups int
	// freeLookups are finished lookups to reuse (dns.go).
	freeLookups []*lookup
	names       nameTable
	sockets     map[uint64]*attempt // eBPF sockets by cookie
	// socketByTuple finds kernel sockets by their 4-tuple, for ICMP errors
	// captured as packets.
	socketByTuple map[flowKey]*attempt
	waiting       map[netip.Addr][]waitRef
	procs         map[event.Process]*event.Process // interned process identities
	interned      map[string]string

	// Facts used to infer which addresses are local.
	dirOut, initiators, servers, contacted addrSet
	// joins holds a dual-stack host's addresses (local.go).
	joins joinTable

	conns   []report.Connection
	lks     []report.Lookup
	connSp  []lostSpan // what of each conns record can be lost
	lkSp    []lostSpan // the same for lks
	act     activityLog
	folded  map[foldKey]int // index into conns/lks of a record calls can fold into
	answers []answeredLookup

	// Folding (fold.go): keys of each tier in use, and the destinations the
	// catch-alls stand for.
	foldKeys, foldKeysDest, foldKeysDestOK int
	otherDests                             map[uint64]struct{} // fingerprints (fold.go)
	catchAlls                              [2][256]int         // record index + 1 of each kind's catch-all per outcome
	otherDestsOverflow                     bool
	squeezed                               bool // successes are summarised (fold.go)
	otherConnDests, otherLookupDests       map[report.Outcome]int
	// Blocked time of the calls folded into earlier records (hosts.go).
	foldedBlocked  unionSet
	hostFolds      map[netip.Addr]*hostFolds
	hostsUntracked bool
	// seenFirst and seenLast span every observation, those past the window
	// included: the capture's span, for window errors.
	seenFirst, seenLast int64

	first, last int64
	lastSweep   int64
	stats       report.Stats

	msg dnsmsg.Msg // scratch for decoding DNS
}

// answeredLookup remembers an A/AAAA answer for the "resolved but never
// contacted" hint.
type answeredLookup struct {
	index int // into lks
	addrs []netip.Addr
}

// New returns an Analyzer with cfg.
func New(cfg Config) *Analyzer {
	cfg.setDefaults()
	return &Analyzer{
		cfg:              cfg,
		flows:            make(map[flowKey]*flow),
		orphans:          make(map[flowKey]orphanSynAck),
		lookups:          make(map[dnsKey][]*lookup),
		names:            newNameTable(cfg.MaxNames),
		sockets:          make(map[uint64]*attempt),
		socketByTuple:    make(map[flowKey]*attempt),
		waiting:          make(map[netip.Addr][]waitRef),
		procs:            make(map[event.Process]*event.Process),
		interned:         make(map[string]string),
		dirOut:           newAddrSet(1024),
		initiators:       newAddrSet(4096),
		servers:          newAddrSet(4096),
		contacted:        newAddrSet(1 << 16),
		joins:            newJoinTable(),
		folded:           make(map[foldKey]int),
		otherDests:       make(map[uint64]struct{}),
		otherConnDests:   make(map[report.Outcome]int),
		otherLookupDests: make(map[report.Outcome]int),
		foldedBlocked:    unionSet{max: maxUnion},
		hostFolds:        make(map[netip.Addr]*hostFolds),
	}
}

// Packet observes one decoded packet. The analyzer copies what it keeps.
func (a *Analyzer) Packet(p *event.Packet) {
	if a.pastSettle(p.Time) {
		return
	}
	a.clock(p.Time)
	if p.Dir == event.DirOut {
		a.dirOut.add(p.Src)
	}
	switch p.Proto {
	case event.ProtoTCP:
		a.tcp(p)
	case event.ProtoUDP:
		if p.SrcPort == 53 || p.DstPort == 53 {
			a.dnsUDP(p)
		} else {
			a.contacted.add(p.Dst)
		}
	case event.ProtoICMP, event.ProtoICMPv6:
		a.icmpError(p)
	}
}

// Sock observes one kernel socket event (eBPF backends).
func (a *Analyzer) Sock(e *event.Sock) {
	if a.pastSettle(e.Time) {
		return
	}
	a.clock(e.Time)
	at := a.sockets[e.Cookie]
	if at == nil && a.pastWindow(e.Time) {
		a.stats.OutsideWindow++ // a call that starts after the window
		return
	}
	if at == nil && e.Kind == event.SockError && e.Dst.IsValid() {
		// connect() failed before any SYN left (a local nftables reject,
		// no route): a call refused on the spot, blocked for no time.
		at = &attempt{client: e.Src, server: e.Dst, start: e.Time, proc: a.keepProc(e.Proc),
			ans: ansKernelError, ansTime: e.Time, errno: e.Errno, stack: e.Stack}
		a.contacted.add(e.Dst.Addr())
		a.dirOut.add(e.Src.Addr())
		a.nameAttempt(at, e.Time)
		a.finishAttempt(at, e.Time)
		return
	}
	if at == nil {
		if e.Kind != event.SockConnect {
			return // a socket connected before we attached
		}
		if len(a.sockets) >= a.cfg.MaxFlows {
			a.stats.FlowsEvicted++
			return
		}
		at = &attempt{client: e.Src, server: e.Dst, start: e.Time, proc: a.keepProc(e.Proc), kernel: true, stack: e.Stack}
		at.addSyn(e.Time)
		a.sockets[e.Cookie] = at
		if e.Src.IsValid() && e.Dst.IsValid() {
			a.socketByTuple[canonKey(e.Src.Addr(), e.Src.Port(), e.Dst.Addr(), e.Dst.Port())] = at
		}
		a.initiators.add(e.Src.Addr())
		a.dirOut.add(e.Src.Addr())
		a.contacted.add(e.Dst.Addr())
		a.nameAttempt(at, e.Time)
		return
	}
	if at.proc == nil && e.Proc != nil {
		at.proc = a.keepProc(e.Proc)
	}
	switch e.Kind {
	case event.SockConnect:
		// The same cookie connecting again: a new attempt on a reused socket.
		a.finishAttempt(at, e.Time)
		a.forgetSocket(e.Cookie, at)
		a.Sock(e)
	case event.SockRetransmit:
		at.addSyn(e.Time)
	case event.SockEstablished:
		if at.ans == ansNone && at.established == 0 {
			at.established = e.Time
		}
	case event.SockReset:
		if at.ans == ansNone && at.established == 0 {
			at.ans, at.ansTime = ansRST, e.Time
		}
	case event.SockError:
		if at.ans == ansNone && at.established == 0 {
			at.errno = e.Errno
			if isTimeoutErrno(e.Errno) {
				at.kernelTimeout = true
				at.closed = e.Time
			} else {
				at.ans, at.ansTime = ansKernelError, e.Time
			}
		}
	case event.SockClose:
		if at.closed == 0 {
			at.closed = e.Time
		}
		a.finishAttempt(at, e.Time)
		a.forgetSocket(e.Cookie, at)
	}
}

func (a *Analyzer) forgetSocket(cookie uint64, at *attempt) {
	delete(a.sockets, cookie)
	k := canonKey(at.client.Addr(), at.client.Port(), at.server.Addr(), at.server.Port())
	if a.socketByTuple[k] == at {
		delete(a.socketByTuple, k)
	}
}

// Lost records events the source lost, so the report can say so.
func (a *Analyzer) Lost(n uint64) { a.stats.EventsLost += n }

// Stats returns the counters so far (evictions, folds, ...), for a
// long-running caller's health; Finish's report has the final ones. Call
// it on the goroutine that feeds the analyzer.
func (a *Analyzer) Stats() report.Stats { return a.stats }

// SourceStats merges what the source counted into the report's stats.
func (a *Analyzer) SourceStats(s event.Stats) {
	a.stats.Packets = s.Packets
	a.stats.Bytes = s.Bytes
	a.stats.Undecodable = s.Undecodable
	a.stats.Truncated = s.Truncated
	a.stats.EventsLost += s.Lost
}

// pastSettle notes an observation's time in the capture's span and says
// whether it is past the window by more than the settle time: calls that
// started inside the window are followed past --to, as far as the settle
// time, so that their outcome is the one the capture shows.
func (a *Analyzer) pastSettle(t int64) bool {
	if a.seenFirst == 0 || t < a.seenFirst {
		a.seenFirst = t
	}
	a.seenLast = max(a.seenLast, t)
	if a.cfg.To != 0 && t > a.cfg.To+int64(a.cfg.Settle) {
		a.stats.OutsideWindow++
		return true
	}
	return false
}

// pastWindow says whether t is after the window's end: no call starts
// there, though the calls already started are still followed.
func (a *Analyzer) pastWindow(t int64) bool { return a.cfg.To != 0 && t > a.cfg.To }

func (a *Analyzer) clock(t int64) {
	if a.first == 0 {
		if a.cfg.FromOffset > 0 {
			a.cfg.From = t + int64(a.cfg.FromOffset)
		}
		if a.cfg.ToOffset > 0 {
			a.cfg.To = t + int64(a.cfg.ToOffset)
		}
	}
	if a.first == 0 || t < a.first {
		a.first = t
	}
	if t > a.last {
		a.last = t
	}
	if a.lastSweep == 0 {
		a.lastSweep = t
	}
	if t-a.lastSweep > int64(time.Second) {
		a.sweep(t, false)
		a.lastSweep = t
	}
}

func (a *Analyzer) keepProc(p *event.Process) *event.Process {
	if p == nil {
		return nil
	}
	if q, ok := a.procs[*p]; ok {
		return q
	}
	q := &event.Process{PID: p.PID, Comm: p.Comm, Parent: p.Parent}
	if len(a.procs) < 4096 {
		a.procs[*q] = q
	}
	return q
}

// intern returns a string equal to b, shared between equal names so that
// heavy DNS traffic does not allocate a string per packet.
func (a *Analyzer) intern(b []byte) string {
	if s, ok := a.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(a.interned) < 1<<16 {
		a.interned[s] = s
	}
	return s
}

// sweep finishes flows and lookups that went idle, so memory follows the
// number of concurrent flows. With force it also evicts live flows, oldest
// first, until the table has room, counting them. Flows are finished in a
// fixed order (by start, then addresses), never in map order, so that the
// same input always gives the same report.
func (a *Analyzer) sweep(now int64, force bool) {
	var done []*flow
	for _, f := range a.flows {
		idle := now - f.lastSeen
		at := f.att
		if (f.finOrRst && idle > int64(2*time.Second)) ||
			(at.ans != ansNone && idle > int64(60*time.Second)) ||
			idle > int64(300*time.Second) {
			done = append(done, f)
		}
	}
	a.finishFlows(done, now)
	if force && len(a.flows) >= a.cfg.MaxFlows*9/10 {
		all := make([]*flow, 0, len(a.flows))
		for _, f := range a.flows {
			all = append(all, f)
		}
		sort.Slice(all, func(i, j int) bool {
			if all[i].lastSeen != all[j].lastSeen {
				return all[i].lastSeen < all[j].lastSeen
			}
			return flowLess(all[i], all[j])
		})
		n := len(a.flows) - a.cfg.MaxFlows*3/4
		a.stats.FlowsEvicted += uint64(n)
		a.finishFlows(all[:n], now)
	}
	a.sweepLookups(now, force)
	a.sweepWaiting(now)
}

// finishFlows finishes and forgets flows, in start order.
func (a *Analyzer) finishFlows(fs []*flow, now int64) {
	sort.Slice(fs, func(i, j int) bool { return flowLess(fs[i], fs[j]) })
	for i, f := range fs {
		a.finishFlow(f, now)
		delete(a.flows, f.key)
		a.recycleFlow(f)
		fs[i] = nil
	}
}

func flowLess(x, y *flow) bool {
	if x.att.start != y.att.start {
		return x.att.start < y.att.start
	}
	if c := bytes.Compare(x.key.src[:], y.key.src[:]); c != 0 {
		return c < 0
	}
	if c := bytes.Compare(x.key.dst[:], y.key.dst[:]); c != 0 {
		return c < 0
	}
	if x.key.srcPort != y.key.srcPort {
		return x.key.srcPort < y.key.srcPort
	}
	return x.key.dstPort < y.key.dstPort
}

// waitRef is an unanswered attempt or lookup whose give-up time may be
// revealed by the next new action of the same host.
type waitRef struct {
	at *attempt
	lk *lookup
}

func (w waitRef) lastTx() int64 {
	if w.at != nil {
		return w.at.lastSyn
	}
	return w.lk.lastQuery
}

func (w waitRef) maxGap(a *Analyzer) int64 {
	if w.at != nil {
		return w.at.retransmitGap()
	}
	return int64(a.cfg.DNSGiveUp) + int64(time.Second)
}

func (w waitRef) answered() bool {
	if w.at != nil {
		return w.at.ans != ansNone || w.at.clientContinued || w.at.serverResponded
	}
	return w.lk.resp != 0
}

func (w waitRef) setNext(t int64) {
	if w.at != nil {
		w.at.nextAction = t
		w.at.waiting = false
		return
	}
	w.lk.nextAction = t
	w.lk.waiting = false
}

// busy notes the host's first own action after the call started: from a
// capture alone, the call's lost time ends there.
func (w waitRef) busy(t int64) {
	if w.at != nil {
		if w.at.busyAt == 0 && t > w.at.start {
			w.at.busyAt = t
		}
		return
	}
	if w.lk.busyAt == 0 && t > w.lk.start {
		w.lk.busyAt = t
	}
}

func (w waitRef) drop() {
	if w.at != nil {
		w.at.waiting = false
		return
	}
	w.lk.waiting = false
}

func (a *Analyzer) wait(at *attempt) {
	if at.waiting {
		return
	}
	at.waiting = true
	a.waiting[at.client.Addr()] = append(a.waiting[at.client.Addr()], waitRef{at: at})
}

func (a *Analyzer) waitLookup(lk *lookup) {
	if lk.waiting {
		return
	}
	lk.waiting = true
	a.waiting[lk.client.Addr()] = append(a.waiting[lk.client.Addr()], waitRef{lk: lk})
}

// action tells waiting attempts and lookups of host src that it did
// something new at time t: it is no longer blocked in them. self (an attempt)
// and lookups of qname are the action itself and are skipped.
func (a *Analyzer) action(src netip.Addr, t int64, self *attempt) {
	a.actionName(src, t, self, "")
}

func (a *Analyzer) actionName(src netip.Addr, t int64, self *attempt, qname string) {
	if len(a.waiting) == 0 {
		return
	}
	list, ok := a.waiting[src]
	if !ok {
		return
	}
	keep := list[:0]
	for _, w := range list {
		if (self != nil && w.at == self) || (qname != "" && w.lk != nil && w.lk.name == qname) {
			keep = append(keep, w)
			continue
		}
		w.busy(t)
		last := w.lastTx()
		switch {
		case w.answered():
			w.drop()
		case t <= last:
			keep = append(keep, w)
		case t > last+w.maxGap(a):
			w.drop()
		default:
			w.setNext(t)
		}
	}
	if len(keep) == 0 {
		delete(a.waiting, src)
		return
	}
	for i := len(keep); i < len(list); i++ {
		list[i] = waitRef{}
	}
	a.waiting[src] = keep
}

// unwait takes w off the waiting list of host src.
func (a *Analyzer) unwait(src netip.Addr, w waitRef) {
	list := a.waiting[src]
	for i := range list {
		if list[i] == w {
			n := len(list) - 1
			copy(list[i:], list[i+1:])
			list[n] = waitRef{}
			if n == 0 {
				delete(a.waiting, src)
			} else {
				a.waiting[src] = list[:n]
			}
			return
		}
	}
}

func (a *Analyzer) sweepWaiting(now int64) {
	for src, list := range a.waiting {
		keep := list[:0]
		for _, w := range list {
			if w.answered() || now > w.lastTx()+w.maxGap(a) {
				w.drop()
				continue
			}
			keep = append(keep, w)
		}
		if len(keep) == 0 {
			delete(a.waiting, src)
		} else {
			a.waiting[src] = keep
		}
	}
}

// addrSet is a bounded set of addresses; past its capacity it stops growing
// and remembers that it overflowed.
type addrSet struct {
	m        map[netip.Addr]struct{}
	max      int
	overflow bool
}

func newAddrSet(max int) addrSet { return addrSet{m: make(map[netip.Addr]struct{}), max: max} }

func (s *addrSet) add(x netip.Addr) {
	if _, ok := s.m[x]; ok {
		return
	}
	if len(s.m) >= s.max {
		s.overflow = true
		return
	}
	s.m[x] = struct{}{}
}

func (s *addrSet) has(x netip.Addr) bool { _, ok := s.m[x]; return ok }
