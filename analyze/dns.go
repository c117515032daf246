package analyze

import (
	"net/netip"
	"sort"
	"time"

	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// dnsKey groups open queries by client, server and transport; the DNS id
// and question tell them apart within a group. Addresses are plain bytes
// (no pointers) so the map hashes memory, as for flows.
type dnsKey struct {
	client, server         [16]byte
	clientPort, serverPort uint16
	tcp                    bool
}

func mkDNSKey(client, server netip.AddrPort, tcp bool) dnsKey {
	return dnsKey{client: client.Addr().As16(), server: server.Addr().As16(),
		clientPort: client.Port(), serverPort: server.Port(), tcp: tcp}
}

// maxPerKey bounds the open queries kept per client/server/transport.
const maxPerKey = 64

// lookup is one DNS query with its retransmissions.
type lookup struct {
	client, server netip.AddrPort
	tcp            bool
	id             uint16
	name           string
	qtype          uint16
	start          int64
	lastQuery      int64
	queries        int
	proc           *event.Process

	resp       int64 // time of the first response (0: none)
	rcode      uint8
	nAnswers   int // answer records of any type
	answers    []netip.Addr
	cnames     []string
	icmp       *report.ICMP
	icmpTime   int64
	nextAction int64
	busyAt     int64 // first new action of the same host after start
	waiting    bool
}

// dnsUDP handles DNS over UDP. A query is no contact with the names its
// server's address also answers for (the resolver and the vendor may
// share one): the "resolved but not contacted" hint judges by what was
// sent, not by address alone.
func (a *Analyzer) dnsUDP(p *event.Packet) {
	a.dnsMessage(p, p.Payload, false)
}

// DNSMessage observes one whole DNS message seen outside a packet flow, such
// as a query and its answer relayed by egress run's DNS proxy: p gives its
// time, addresses, ports and process; msg is the message; tcp says which
// transport the client used (DNS over TCP is otherwise reassembled from
// the stream's packets).
func (a *Analyzer) DNSMessage(p *event.Packet, msg []byte, tcp bool) {
	if a.pastSettle(p.Time) {
		return
	}
	a.clock(p.Time)
	if p.Dir == event.DirOut {
		a.dirOut.add(p.Src)
	}
	a.dnsMessage(p, msg, tcp)
}

// dnsMessage handles one DNS message carried by p (UDP payload or one
// message reassembled from a TCP stream).
func (a *Analyzer) dnsMessage(p *event.Packet, b []byte, tcp bool) {
	m := &a.msg
	if err := m.Unpack(b); err != nil && !m.QuestionOK() && !(m.HeaderOK() && m.Response) {
		return
	}
	if !m.Response {
		if !m.QuestionOK() || m.Opcode != 0 {
			return
		}
		a.dnsQuery(p, m, tcp)
		return
	}
	a.dnsResponse(p, m, tcp)
}

func (a *Analyzer) dnsQuery(p *event.Packet, m *dnsmsg.Msg, tcp bool) {
	client, server := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
	k := mkDNSKey(client, server, tcp)
	name := a.intern(m.QName)
	for _, lk := range a.lookups[k] {
		if lk.id == m.ID && lk.name == name && lk.qtype == m.QType {
			lk.queries++
			lk.lastQuery = p.Time
			if lk.resp == 0 {
				lk.nextAction = 0
				a.waitLookup(lk)
			}
			return
		}
	}
	a.actionName(p.Src, p.Time, nil, name)
	if a.pastWindow(p.Time) {
		a.stats.OutsideWindow++ // a lookup that starts after the window
		return
	}
	if a.nLookups >= a.cfg.MaxLookups {
		a.sweepLookups(p.Time, true)
	}
	list := a.lookups[k]
	if len(list) >= maxPerKey {
		a.finishLookup(list[0], p.Time)
		a.recycle(list[0])
		list = list[1:]
		a.nLookups--
		a.stats.LookupsEvicted++
	}
	lk := a.newLookup()
	lk.client, lk.server, lk.tcp, lk.id, lk.name, lk.qtype = client, server, tcp, m.ID, name, m.QType
	lk.start, lk.lastQuery, lk.queries, lk.proc = p.Time, p.Time, 1, a.keepProc(p.Proc)
	a.lookups[k] = append(list, lk)
	a.nLookups++
	a.waitLookup(lk)
}

func (a *Analyzer) dnsResponse(p *event.Packet, m *dnsmsg.Msg, tcp bool) {
	k := mkDNSKey(netip.AddrPortFrom(p.Dst, p.DstPort), netip.AddrPortFrom(p.Src, p.SrcPort), tcp)
	qname := a.intern(m.QName)
	list := a.lookups[k]
	idx := -1
	for i, lk := range list {
		if lk.id != m.ID {
			continue
		}
		if idx < 0 || (lk.name == qname && lk.qtype == m.QType) {
			idx = i
		}
	}
	// Names from every answer, matched or not: a response whose query was
	// not captured still says what the address is called. A matched one
	// also says which process asked.
	var asker *event.Process
	if idx >= 0 {
		asker = list[idx].proc
	}
	a.learnNames(p, m, qname, asker)
	if idx < 0 {
		a.stats.UnmatchedAnswers++
		return
	}
	lk := list[idx]
	lk.resp = p.Time
	lk.rcode = m.Rcode
	// An answer is a record of the type asked for (any type for ANY): a
	// CNAME chain that ends without one is NOERROR with no data.
	lk.nAnswers = 0
	for i := range m.Answers {
		if t := m.Answers[i].Type; t == lk.qtype || lk.qtype == 255 {
			lk.nAnswers++
		}
	}
	lk.nAnswers += m.AnswersDropped // not kept, so not known: counted as answers
	for i := range m.Answers {
		rr := &m.Answers[i]
		switch {
		case rr.Addr.IsValid() && len(lk.answers) < 32:
			lk.answers = append(lk.answers, rr.Addr)
		case rr.Type == dnsmsg.TypeCNAME && len(lk.cnames) < 8:
			lk.cnames = append(lk.cnames, a.intern(rr.Target))
		}
	}
	list = append(list[:idx], list[idx+1:]...)
	if len(list) == 0 {
		delete(a.lookups, k)
	} else {
		a.lookups[k] = list
	}
	a.nLookups--
	a.finishLookup(lk, p.Time)
	a.recycle(lk)
}

// maxFreeLookups bounds the finished lookups kept for reuse.
const maxFreeLookups = 4096

// newLookup returns a zeroed lookup, a finished one where there is one: a
// busy capture makes hundreds of thousands of queries, and a new lookup for
// each was a third of everything the replay allocated (docs/benchmarks.md).
func (a *Analyzer) newLookup() *lookup {
	n := len(a.freeLookups)
	if n == 0 {
		return new(lookup)
	}
	lk := a.freeLookups[n-1]
	a.freeLookups[n-1] = nil
	a.freeLookups = a.freeLookups[:n-1]
	a.reused++
	return lk
}

// recycle makes a finished lookup, no longer in a.lookups, free for reuse.
// Nothing may point to it afterwards: it leaves its host's waiting list, and
// the slices its record or a.answers share (cnames, handed-over answers)
// are not reused.
func (a *Analyzer) recycle(lk *lookup) {
	if a.noReuse {
		return
	}
	if lk.waiting {
		a.unwait(lk.client.Addr(), waitRef{lk: lk})
	}
	answers := lk.answers[:0]
	*lk = lookup{answers: answers}
	if len(a.freeLookups) < maxFreeLookups {
		a.freeLookups = append(a.freeLookups, lk)
	}
}

func (a *Analyzer) learnNames(p *event.Packet, m *dnsmsg.Msg, qname string, asker *event.Process) {
	if m.Rcode != 0 || qname == "" {
		return
	}
	for i := range m.Answers {
		rr := &m.Answers[i]
		if rr.Addr.IsValid() {
			a.names.add(rr.Addr, qname, p.Dst, asker, p.Time, rr.TTL, &a.stats)
		}
	}
}

// dnsICMP matches an ICMP unreachable quoting a query to that query.
func (a *Analyzer) dnsICMP(client, server netip.AddrPort, p *event.Packet) {
	dk := mkDNSKey(client, server, false)
	for _, lk := range a.lookups[dk] {
		if lk.resp == 0 && lk.icmp == nil {
			lk.icmp = icmpInfo(p)
			lk.icmpTime = p.Time
		}
	}
}

func (a *Analyzer) sweepLookups(now int64, force bool) {
	limit := int64(a.cfg.DNSGiveUp) * 3
	a.finishLookups(func(lk *lookup) bool { return now-lk.lastQuery > limit }, now, false)
	if force && a.nLookups >= a.cfg.MaxLookups*9/10 {
		// Still full of live queries: finish the oldest, counted.
		var all []*lookup
		for _, list := range a.lookups {
			all = append(all, list...)
		}
		sortLookups(all)
		n := a.nLookups - a.cfg.MaxLookups*3/4
		evict := map[*lookup]bool{}
		for _, lk := range all[:n] {
			evict[lk] = true
		}
		a.finishLookups(func(lk *lookup) bool { return evict[lk] }, now, true)
	}
}

// finishLookups finishes and forgets the open lookups that match, in start
// order, so the report does not depend on map order.
func (a *Analyzer) finishLookups(match func(*lookup) bool, now int64, evicted bool) {
	var done []*lookup
	for k, list := range a.lookups {
		keep := list[:0]
		for _, lk := range list {
			if match(lk) {
				done = append(done, lk)
				continue
			}
			keep = append(keep, lk)
		}
		if len(keep) == 0 {
			delete(a.lookups, k)
		} else {
			a.lookups[k] = keep
		}
	}
	sortLookups(done)
	for i, lk := range done {
		a.finishLookup(lk, now)
		a.recycle(lk)
		done[i] = nil
		a.nLookups--
		if evicted {
			a.stats.LookupsEvicted++
		}
	}
}

func sortLookups(ls []*lookup) {
	sort.Slice(ls, func(i, j int) bool {
		x, y := ls[i], ls[j]
		if x.start != y.start {
			return x.start < y.start
		}
		if c := x.client.Compare(y.client); c != 0 {
			return c < 0
		}
		if x.id != y.id {
			return x.id < y.id
		}
		return x.name < y.name
	})
}

func rcodeOutcome(rcode uint8, answers int) report.Outcome {
	switch rcode {
	case 0:
		if answers > 0 {
			return report.Answered
		}
		return report.NoData
	case 2:
		return report.ServFail
	case 3:
		return report.NXDomain
	case 5:
		return report.DNSRefused
	}
	return report.RcodeOutcome(rcode)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// resolveLookup decides a lookup's outcome as of time end.
func (a *Analyzer) resolveLookup(lk *lookup, end int64) (outcome report.Outcome, t int64, basis string, inferred bool) {
	switch {
	case lk.resp != 0:
		return rcodeOutcome(lk.rcode, lk.nAnswers), lk.resp, "answer", false
	case lk.icmp != nil:
		return report.Rejected, lk.icmpTime, "answer", false
	case lk.nextAction != 0:
		return report.Timeout, lk.nextAction, "next-action", true
	case end >= lk.lastQuery+int64(a.cfg.DNSGiveUp):
		return report.Timeout, lk.lastQuery + int64(a.cfg.DNSGiveUp), "resolver-timeout", true
	}
	return report.Pending, end, "window-end", false
}

func (a *Analyzer) finishLookup(lk *lookup, now int64) {
	if !a.startsInWindow(lk.start) {
		a.stats.OutsideWindow++
		return
	}
	out, end, basis, inferred := a.resolveLookup(lk, now)
	blocked := a.blockedInWindow(lk.start, end)
	fail := out.Failed()
	pl := a.place(len(a.lks), foldKey{lookup: true, client: lk.client.Addr().As16(), dst: lk.server.Addr().As16(),
		port: lk.server.Port(), name: nameKey(lk.name), qtype: lk.qtype, out: out}, fail, lk.client.Addr(), lk.server.Addr())
	if pl.inbound {
		return // a lookup this host answered, not one it made
	}
	if pl.index >= 0 {
		a.noteFolded(lk.client.Addr(), lk.server.Addr(), lk.start, end, fail)
		f := &a.lks[pl.index]
		if f.Count == 1 {
			f.BlockedSumMS = f.BlockedMS
			if f.FoldedBy == "" {
				f.FoldedBy = report.FoldClient
			}
		}
		f.Count++
		f.Attempts += lk.queries
		f.BlockedMS = max(f.BlockedMS, blocked)
		f.BlockedSumMS += blocked
		f.Inferred = f.Inferred || inferred
		a.stats.RecordsFolded++
		if pl.key.tier == tierOutcome {
			a.stats.RecordsDropped++
		}
		if a.cfg.SettleFolded {
			l := a.lookupRecord(lk, out, end, basis, inferred, blocked)
			a.settledLookup(&l)
		}
		return
	}
	l := a.lookupRecord(lk, out, end, basis, inferred, blocked)
	if pl.tier != tierOwn {
		l.FoldedBy = pl.tier.foldedBy()
	}
	streamed := false
	if pl.tier == tierOutcome {
		if a.cfg.SettleFolded {
			own := l
			own.FoldedBy = ""
			a.settledLookup(&own) // with its own name, not the fold's
			streamed = true
		}
		l.Name, l.QType, l.Server, l.Answers, l.CNAMEs = OtherDestinations, "", netip.AddrPort{}, []string{}, nil
		a.stats.RecordsDropped++
	}
	a.register(pl, len(a.lks), fail)
	a.addLookup(l, lk, !streamed)
}

// lookupRecord builds the report record of a settled lookup.
func (a *Analyzer) lookupRecord(lk *lookup, out report.Outcome, end int64, basis string, inferred bool, blocked float64) report.Lookup {
	l := report.Lookup{
		Name:      lk.name,
		QType:     dnsmsg.TypeString(lk.qtype),
		Client:    lk.client.Addr().Unmap(),
		Server:    unmapped(lk.server),
		Transport: "udp",
		Start:     time.Unix(0, lk.start).UTC(),
		Attempts:  lk.queries,
		Outcome:   out,
		End:       time.Unix(0, end).UTC(),
		BlockedMS: blocked,
		Inferred:  inferred,
		EndBasis:  basis,
		ICMP:      lk.icmp,
		Count:     1,
		Answers:   []string{},
	}
	if lk.tcp {
		l.Transport = "tcp"
	}
	if lk.resp != 0 {
		l.Rcode = rcodeName(lk.rcode)
	}
	sorted := append([]netip.Addr(nil), lk.answers...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Less(sorted[j]) })
	for _, ad := range sorted {
		l.Answers = append(l.Answers, ad.Unmap().String())
	}
	l.CNAMEs = lk.cnames
	if lk.proc != nil {
		pid, comm := lk.proc.PID, lk.proc.Comm
		l.PID, l.Comm = &pid, &comm
	}
	return l
}

func (a *Analyzer) addLookup(l report.Lookup, lk *lookup, settle bool) {
	if l.Outcome == report.Answered && (lk.qtype == dnsmsg.TypeA || lk.qtype == dnsmsg.TypeAAAA) && len(a.answers) < 4096 {
		a.answers = append(a.answers, answeredLookup{index: len(a.lks), addrs: lk.answers})
		lk.answers = nil // a.answers has them now; not reused with lk
	}
	a.lks = append(a.lks, l)
	a.lkSp = append(a.lkSp, spanOf(l.Outcome.Failed() && l.Name != OtherDestinations, lk.start, l.End.UnixNano(), lk.busyAt))
	if settle {
		a.settledLookup(&a.lks[len(a.lks)-1])
	}
}

func rcodeName(r uint8) string {
	switch r {
	case 0:
		return "NOERROR"
	case 1:
		return "FORMERR"
	case 2:
		return "SERVFAIL"
	case 3:
		return "NXDOMAIN"
	case 4:
		return "NOTIMP"
	case 5:
		return "REFUSED"
	}
	return "RCODE" + itoa(int(r))
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// tcpDNS reassembles DNS messages from one TCP flow (RFC 1035 4.2.2 framing),
// in order only and bounded: a gap drops the buffered bytes.
type tcpDNS struct {
	buf     [2][]byte // 0: client to server, 1: server to client
	next    [2]uint32
	started [2]bool
}

const maxDNSTCPBuffer = 65536 + 2

func (a *Analyzer) dnsTCPSegment(f *flow, p *event.Packet, fromClient bool) {
	d := f.dns
	dir := 1
	if fromClient {
		dir = 0
	}
	data := p.Payload
	seq := p.Seq
	if !d.started[dir] {
		d.started[dir] = true
		d.next[dir] = seq
	}
	if off := d.next[dir] - seq; seq != d.next[dir] {
		if int32(off) > 0 && int(off) < len(data) { // overlap with what we have
			data = data[off:]
		} else if int32(off) > 0 {
			return // a retransmission of bytes already seen
		} else {
			d.buf[dir] = d.buf[dir][:0] // a gap: resynchronise at this segment
		}
	}
	d.next[dir] = seq + uint32(len(p.Payload))
	if len(d.buf[dir])+len(data) > maxDNSTCPBuffer {
		d.buf[dir] = d.buf[dir][:0]
		return
	}
	d.buf[dir] = append(d.buf[dir], data...)
	for {
		msg, rest, ok := dnsmsg.SplitTCP(d.buf[dir])
		if !ok {
			break
		}
		a.dnsMessage(p, msg, true)
		n := copy(d.buf[dir], rest)
		d.buf[dir] = d.buf[dir][:n]
	}
}

// dnsOverTCPMidstream handles DNS over a TCP flow whose SYN was not captured:
// each segment that holds whole messages is decoded on its own.
func (a *Analyzer) dnsOverTCPMidstream(k flowKey, p *event.Packet) {
	b := p.Payload
	for len(b) > 0 {
		msg, rest, ok := dnsmsg.SplitTCP(b)
		if !ok {
			return
		}
		a.dnsMessage(p, msg, true)
		b = rest
	}
}
