package analyze

import (
	"bytes"
	"net/netip"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// answer is what first answered a connection attempt.
type answer uint8

const (
	ansNone answer = iota
	ansSynAck
	ansRST
	ansICMP
	ansKernelError // eBPF: the kernel reported an error on the socket
)

// maxSynTimes bounds the SYN times kept per attempt; the count is exact.
const maxSynTimes = 8

// attempt is one client socket's try to connect: one ISN on one 4-tuple.
type attempt struct {
	client, server netip.AddrPort
	isn            uint32
	synPayload     uint32 // TCP Fast Open data carried by the SYN
	start          int64
	lastSyn        int64
	syns           int
	synTimes       [maxSynTimes]int64

	ans     answer
	ansTime int64
	// lastAns is the last repeat of a refusal or rejection: some stacks
	// retry the SYN after a RST (Windows) or a soft ICMP error (Linux, for
	// ICMPv6 admin-prohibited), and the caller stays blocked until the last.
	lastAns   int64
	serverISN uint32
	icmp      *report.ICMP
	errno     int

	synAcks, rsts   int           // SYN-ACKs from the server, RSTs either way, on this attempt's flow
	handshakeAcked  bool          // the client acknowledged the SYN-ACK
	clientRST       int64         // time of a client RST (0: none)
	clientContinued bool          // client sent ACKs/data although no answer was captured
	serverResponded bool          // server sent something other than SYN-ACK/RST
	kernel          bool          // seen by the kernel backend (eBPF), not as packets
	closed          int64         // eBPF: the socket was closed (time)
	kernelTimeout   bool          // eBPF: the kernel gave up (ETIMEDOUT)
	established     int64         // eBPF: ESTABLISHED time
	stack           []event.Frame // eBPF --stacks: the connecting thread's stack

	nextAction int64 // first new action of the same host after lastSyn
	busyAt     int64 // first new action of the same host after start
	newISN     int64 // a new SYN with another ISN replaced this attempt

	host       string
	nameSource string
	nameStep   int // which naming step gave host (stepProcess...)
	proc       *event.Process
	waiting    bool // listed in Analyzer.waiting
}

// flow is a TCP 4-tuple the analyzer follows, keyed by canonKey (both
// directions share the key; the attempt says which end is the client).
type flow struct {
	key      flowKey
	att      *attempt
	lastSeen int64
	finOrRst bool

	// The start of the client's byte stream, kept only until a TLS
	// ClientHello that spans segments is complete.
	hello     []byte
	helloNext uint32 // next expected client sequence number for hello
	named     bool   // SNI/Host looked at; stop looking

	dns *tcpDNS // DNS over TCP reassembly, when a port is 53
}

// flowKey holds addresses as 16-byte arrays: no pointers, so the map
// hashes plain memory and the collector never scans its keys.
type flowKey struct {
	src, dst         [16]byte
	srcPort, dstPort uint16
}

// canonKey orders the two ends so both directions of a flow share one key
// (one map lookup per packet).
func canonKey(a netip.Addr, ap uint16, b netip.Addr, bp uint16) flowKey {
	x, y := a.As16(), b.As16()
	if c := bytes.Compare(x[:], y[:]); c > 0 || (c == 0 && ap > bp) {
		x, ap, y, bp = y, bp, x, ap
	}
	return flowKey{src: x, dst: y, srcPort: ap, dstPort: bp}
}

// isClient says whether addr:port is the end that sent the attempt's SYN.
func (at *attempt) isClient(addr netip.Addr, port uint16) bool {
	return at.client.Port() == port && at.client.Addr() == addr
}

func (a *Analyzer) tcp(p *event.Packet) {
	k := canonKey(p.Src, p.SrcPort, p.Dst, p.DstPort)
	syn := p.Flags&event.TCPSyn != 0
	ack := p.Flags&event.TCPAck != 0

	if f := a.flows[k]; f != nil {
		if f.att.isClient(p.Src, p.SrcPort) {
			a.fromClient(f, p, syn, ack)
		} else {
			a.fromServer(f, p, syn, ack)
		}
		return
	}
	switch {
	case syn && !ack:
		a.newAttempt(k, p)
	case syn && ack:
		a.rememberOrphanSynAck(k, p)
	default:
		// Data, FIN or RST is the host doing something; a bare ACK is not.
		if len(p.Payload) > 0 || p.Flags&(event.TCPFin|event.TCPRst) != 0 {
			a.action(p.Src, p.Time, nil)
		}
		if isDNSTCPPort(p.SrcPort) || isDNSTCPPort(p.DstPort) {
			a.dnsOverTCPMidstream(k, p)
		}
	}
}

func (a *Analyzer) newAttempt(k flowKey, p *event.Packet) {
	if a.pastWindow(p.Time) {
		// A call that starts after the window: not followed, but it is
		// the host's next action for the calls it was waiting in.
		a.stats.OutsideWindow++
		a.action(p.Src, p.Time, nil)
		return
	}
	if len(a.flows) >= a.cfg.MaxFlows {
		a.sweep(p.Time, true)
	}
	f := a.newFlow()
	at := f.att
	at.client, at.server = netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
	at.isn, at.synPayload = p.Seq, uint32(len(p.Payload))
	at.start, at.proc = p.Time, a.keepProc(p.Proc)
	at.addSyn(p.Time)
	f.key, f.lastSeen = k, p.Time
	a.flows[k] = f
	a.initiators.add(p.Src)
	if !isDNSTCPPort(p.DstPort) {
		a.contacted.add(p.Dst) // DNS over TCP is no contact (see dnsUDP)
	}
	a.nameAttempt(at, p.Time)
	a.action(p.Src, p.Time, at)
	a.wait(at)
	if orphan, ok := a.orphans[k]; ok && orphan.from == p.Dst {
		delete(a.orphans, k)
		at.synAcks++
		if ackMatches(orphan.ack, at) {
			at.ans, at.ansTime, at.serverISN = ansSynAck, orphan.time, orphan.seq
		}
	}
	if isDNSTCPPort(k.dstPort) || isDNSTCPPort(k.srcPort) {
		f.dns = &tcpDNS{}
	}
	if len(p.Payload) > 0 {
		a.clientPayload(f, p)
	}
}

// maxFreeFlows bounds the finished flows kept for reuse.
const maxFreeFlows = 4096

// newFlow returns a zeroed flow with its zeroed attempt, finished ones where
// there are some: a flow and its attempt were allocated for every SYN, a
// quarter of everything a busy replay allocated (docs/benchmarks.md). A new
// pair is one allocation.
func (a *Analyzer) newFlow() *flow {
	if n := len(a.freeFlows); n > 0 {
		f := a.freeFlows[n-1]
		a.freeFlows[n-1] = nil
		a.freeFlows = a.freeFlows[:n-1]
		a.reused++
		return f
	}
	fa := new(struct {
		f  flow
		at attempt
	})
	fa.f.att = &fa.at
	return &fa.f
}

// recycleFlow makes a finished flow, no longer in a.flows, and its attempt
// free for reuse. Nothing may point to them afterwards: the attempt leaves
// its host's waiting list (a record copies what it keeps of an attempt).
func (a *Analyzer) recycleFlow(f *flow) {
	if a.noReuse {
		return
	}
	at := f.att
	if at.waiting {
		a.unwait(at.client.Addr(), waitRef{at: at})
	}
	*at = attempt{}
	*f = flow{att: at}
	if len(a.freeFlows) < maxFreeFlows {
		a.freeFlows = append(a.freeFlows, f)
	}
}

func (at *attempt) addSyn(t int64) {
	if at.syns < maxSynTimes {
		at.synTimes[at.syns] = t
	}
	at.syns++
	at.lastSyn = t
}

// ackMatches says whether a SYN-ACK's acknowledgment number answers the
// attempt's SYN: ISN+1, or up to ISN+1+data for TCP Fast Open.
func ackMatches(ackNum uint32, at *attempt) bool {
	d := ackNum - (at.isn + 1)
	return d <= at.synPayload
}

func (a *Analyzer) fromClient(f *flow, p *event.Packet, syn, ack bool) {
	at := f.att
	f.lastSeen = p.Time
	if at.proc == nil && p.Proc != nil {
		at.proc = a.keepProc(p.Proc)
	}
	switch {
	case syn && !ack:
		if p.Seq == at.isn {
			at.addSyn(p.Time)
			if at.ans == ansNone {
				at.nextAction = 0
				a.wait(at)
			}
			return
		}
		// A new ISN on the same 4-tuple: the old socket is gone.
		at.newISN = p.Time
		a.action(p.Src, p.Time, nil)
		k := f.key
		a.finishFlow(f, p.Time)
		delete(a.flows, k)
		a.recycleFlow(f)
		a.newAttempt(k, p)
		return
	case p.Flags&event.TCPRst != 0:
		f.finOrRst = true
		at.rsts++
		if at.clientRST == 0 {
			at.clientRST = p.Time
		}
		return
	}
	if ack {
		switch {
		case at.ans == ansSynAck && !at.handshakeAcked:
			at.handshakeAcked = true
		case at.ans == ansNone:
			at.clientContinued = true
		}
	}
	if p.Flags&event.TCPFin != 0 {
		f.finOrRst = true
	}
	if len(p.Payload) > 0 || p.Flags&event.TCPFin != 0 {
		a.action(p.Src, p.Time, at)
	}
	if len(p.Payload) > 0 {
		a.clientPayload(f, p)
	}
}

func (a *Analyzer) fromServer(f *flow, p *event.Packet, syn, ack bool) {
	at := f.att
	f.lastSeen = p.Time
	switch {
	case syn && ack:
		at.synAcks++
		if at.ans == ansNone && ackMatches(p.Ack, at) {
			at.ans, at.ansTime, at.serverISN = ansSynAck, p.Time, p.Seq
			a.servers.add(p.Src)
		}
		return
	case p.Flags&event.TCPRst != 0:
		f.finOrRst = true
		at.rsts++
		if at.ans == ansNone {
			at.ans, at.ansTime = ansRST, p.Time
		}
		if at.ans == ansRST {
			at.lastAns = p.Time
		}
		return
	}
	if at.ans == ansNone {
		at.serverResponded = true
	}
	if p.Flags&event.TCPFin != 0 {
		f.finOrRst = true
	}
	if len(p.Payload) > 0 || p.Flags&event.TCPFin != 0 {
		// The server side of an inbound connection is this host acting
		// (e.g. the login's response once the vendor calls gave up).
		a.action(p.Src, p.Time, nil)
	}
	if f.dns != nil && len(p.Payload) > 0 {
		a.dnsTCPSegment(f, p, false)
	}
}

// orphanSynAck is a SYN-ACK seen before its SYN (capture reordering).
type orphanSynAck struct {
	time     int64
	seq, ack uint32
	from     netip.Addr
}

const maxOrphans = 1024

func (a *Analyzer) rememberOrphanSynAck(k flowKey, p *event.Packet) {
	if len(a.orphans) >= maxOrphans {
		for key, o := range a.orphans {
			if p.Time-o.time > 2e9 {
				delete(a.orphans, key)
			}
		}
		if len(a.orphans) >= maxOrphans {
			clear(a.orphans) // all recent: a flood, not reordering
		}
	}
	a.orphans[k] = orphanSynAck{time: p.Time, seq: p.Seq, ack: p.Ack, from: p.Src}
}

// icmpError matches an ICMP destination-unreachable to the attempt or lookup
// whose packet it quotes.
func (a *Analyzer) icmpError(p *event.Packet) {
	q := &p.Quoted
	if !q.Valid || !isUnreachable(p) {
		return
	}
	switch q.Proto {
	case event.ProtoTCP:
		var at *attempt
		if f := a.flows[canonKey(q.Src, q.SrcPort, q.Dst, q.DstPort)]; f != nil {
			at = f.att
		} else {
			// A kernel-observed socket (watch): the ICMP error is seen as a
			// packet, while the kernel may keep it as a soft error and
			// report nothing.
			at = a.socketByTuple[canonKey(q.Src, q.SrcPort, q.Dst, q.DstPort)]
		}
		if at == nil || !at.isClient(q.Src, q.SrcPort) {
			return
		}
		if q.HasSeq && q.Seq != at.isn && !at.kernel {
			return // the kernel view does not know the ISN
		}
		if at.ans == ansICMP {
			at.lastAns = p.Time
			return
		}
		if at.ans != ansNone {
			return
		}
		at.ans, at.ansTime = ansICMP, p.Time
		at.icmp = icmpInfo(p)
	case event.ProtoUDP:
		if q.DstPort == 53 {
			a.dnsICMP(netip.AddrPortFrom(q.Src, q.SrcPort), netip.AddrPortFrom(q.Dst, q.DstPort), p)
		}
	}
}

func isUnreachable(p *event.Packet) bool {
	if p.Proto == event.ProtoICMP {
		return p.ICMPType == 3
	}
	return p.ICMPType == 1
}

func icmpInfo(p *event.Packet) *report.ICMP {
	return &report.ICMP{Type: p.ICMPType, Code: p.ICMPCode, Meaning: icmpMeaning(p.Proto, p.ICMPType, p.ICMPCode), From: p.Src}
}

func icmpMeaning(proto, typ, code uint8) string {
	if proto == event.ProtoICMP && typ == 3 {
		switch code {
		case 0:
			return "network unreachable"
		case 1:
			return "host unreachable"
		case 2:
			return "protocol unreachable"
		case 3:
			return "port unreachable"
		case 4:
			return "fragmentation needed"
		case 9, 10:
			return "administratively prohibited (network/host)"
		case 13:
			return "communication administratively prohibited"
		}
		return "destination unreachable"
	}
	if proto == event.ProtoICMPv6 && typ == 1 {
		switch code {
		case 0:
			return "no route to destination"
		case 1:
			return "communication administratively prohibited"
		case 3:
			return "address unreachable"
		case 4:
			return "port unreachable"
		case 5:
			return "source address failed ingress/egress policy"
		case 6:
			return "reject route to destination"
		}
		return "destination unreachable"
	}
	return "icmp error"
}

// isDNSTCPPort: DNS over TCP runs on 53; TCP 5353 is unicast DNS as well
// (multicast DNS is UDP only), and tshark decodes it as DNS.
func isDNSTCPPort(port uint16) bool { return port == 53 || port == 5353 }
