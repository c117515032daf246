package gencap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strconv"
)

// Stats describes a generated capture: what was written and which outcomes
// a correct analyzer must find. Every session runs to its end before Write
// returns, so no outcome is left pending.
type Stats struct {
	Packets    uint64   `json:"packets"`
	Bytes      uint64   `json:"bytes"`      // file size, pcap headers included
	WireBytes  uint64   `json:"wire_bytes"` // sum of frame lengths
	StartNanos int64    `json:"start_ns"`   // time of the first packet
	EndNanos   int64    `json:"end_ns"`     // time of the last packet
	Flows      int      `json:"flows"`      // concurrent session slots
	TCP        TCPStats `json:"tcp"`
	DNS        DNSStats `json:"dns"`
	// Inbound counts the sessions remote hosts opened to the client hosts
	// (Config.InboundShare): not egress, never in TCP.
	Inbound InboundStats `json:"inbound"`
	// Windows holds the truth of each Config.Windows entry, in order.
	Windows []WindowStats `json:"windows,omitempty"`
}

// InboundStats counts inbound TCP attempts.
type InboundStats struct {
	Attempts    uint64 `json:"attempts"`
	Established uint64 `json:"established"`
	Scans       uint64 `json:"scans"` // one SYN to a silent port, never answered
}

// WindowStats is the truth for one window: the calls whose first SYN or
// first query lies inside it, by the outcome the capture shows.
type WindowStats struct {
	FromNanos int64 `json:"from_ns"`
	ToNanos   int64 `json:"to_ns"`
	// Connections and Lookups count by outcome: established, refused,
	// rejected, timeout (timeout or pending: whether the give-up is in the
	// capture depends on the capture's end); answered, nodata, nxdomain,
	// servfail, timeout.
	Connections map[string]uint64 `json:"connections"`
	Lookups     map[string]uint64 `json:"lookups"`
	Inbound     uint64            `json:"inbound"` // inbound attempts
}

// TCPStats counts TCP connection attempts by expected outcome, and the
// packets that show the outcome.
type TCPStats struct {
	Attempts    uint64 `json:"attempts"`
	Established uint64 `json:"established"` // handshake, data both ways, FIN close
	Refused     uint64 `json:"refused"`     // RST answered the SYN
	Rejected    uint64 `json:"rejected"`    // ICMP unreachable answered the SYN
	Timeout     uint64 `json:"timeout"`     // SYNs dropped silently until the caller gave up
	// TimeoutAfterEnd counts the timeouts whose caller gave up after the
	// last packet of the file: an analyzer bounded by the capture must call
	// them pending (and may call others pending: it infers the give-up).
	TimeoutAfterEnd uint64 `json:"timeout_after_end"`
	IPv6            uint64 `json:"ipv6"`      // attempts over IPv6
	Looked          uint64 `json:"looked_up"` // attempts preceded by their DNS lookup
	TLS             uint64 `json:"tls"`       // established with a ClientHello carrying SNI
	HTTP            uint64 `json:"http"`      // established with an HTTP request carrying Host

	SYNs      uint64 `json:"syn_packets"`    // SYN without ACK, retransmissions included
	SYNACKs   uint64 `json:"synack_packets"` // one per established attempt
	RSTs      uint64 `json:"rst_packets"`    // one per refused attempt
	ICMPs     uint64 `json:"icmp_packets"`   // one per rejected attempt
	Packets   uint64 `json:"packets"`        // all TCP packets
	Retrans   uint64 `json:"syn_retransmits"`
	TimeoutNs int64  `json:"timeout_ns"` // sum over timed-out attempts of first SYN to giving up
}

// DNSStats counts DNS lookups by expected outcome. A lookup is one question
// (A or AAAA) asked once, or twice when unanswered.
type DNSStats struct {
	Lookups uint64 `json:"lookups"`
	NoError uint64 `json:"noerror"` // answered with an address (after any CNAME)
	NoData  uint64 `json:"nodata"`  // NOERROR without an address of the asked type
	// NoDataCNAME counts the NoData answers that carry a CNAME chain (with
	// an SOA) but no address, as resolvers answer for such names.
	NoDataCNAME uint64 `json:"nodata_cname"`
	NXDomain    uint64 `json:"nxdomain"` // name does not exist
	ServFail    uint64 `json:"servfail"` // resolver failed
	Timeout     uint64 `json:"timeout"`  // never answered
	// TimeoutAfterEnd counts the timeouts whose caller gave up after the
	// last packet of the file (see TCPStats.TimeoutAfterEnd).
	TimeoutAfterEnd uint64 `json:"timeout_after_end"`
	Queries         uint64 `json:"queries"`   // query packets, retries included
	Responses       uint64 `json:"responses"` // response packets
	Packets         uint64 `json:"packets"`
}

// TCP flags and IP protocol numbers as they appear on the wire.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// Timing of the simulated hosts.
const (
	second          = int64(1e9)
	dnsRetry        = 5 * second // glibc's default resolver timeout
	linearSYNs      = 4          // Linux >= 6.5: first retransmits 1 s apart
	portBase        = 32768
	portRange       = 28232 // Linux ephemeral ports 32768-60999
	randomBlockSize = 1 << 20
)

// giveUps are the callers' connect timeouts for dropped attempts.
var giveUps = []int64{3 * second, 5 * second, 10 * second}

type kind uint8

const (
	kindTCP kind = iota
	kindDNS      // a lookup whose result is not used for a connection here
)

type outcome uint8

const (
	outEstablished outcome = iota
	outRefused
	outRejected
	outTimeout
)

type dnsOutcome uint8

const (
	dnsAnswered dnsOutcome = iota // NOERROR, NODATA or NXDOMAIN, by the name
	dnsServFail
	dnsUnanswered
)

type state uint8

const (
	stQuery state = iota
	stAnswer
	stSYN
	stSYNACK
	stRST
	stICMP
	stACK
	stRequest
	stResponse
	stClientAck
	stFin
	stFinServer
	stLastAck
)

// slot runs one session after another, so the number of busy sessions stays
// at Config.Flows. A session that waits a second or more (a dropped SYN, an
// unanswered query) leaves its slot, which starts the next session at once:
// idle waits then do not slow the packet rate, and the waiting sessions add
// to the flows an analyzer tracks.
type slot struct {
	client int // the client host this slot's sessions come from
	slotNo int // which slot of this client: picks the port residue
	gen    int // sessions started so far
}

// flow is one session.
type flow struct {
	next     int64 // time of the next packet
	rtt      int64 // this session's round trip
	slot     int32
	client   int
	detached bool // waiting on a long timer, no longer holding its slot

	kind  kind
	state state
	v6    bool
	name  int32
	qtype uint16

	// DNS
	dnsOut   dnsOutcome
	dnsID    uint16
	dnsPort  uint16
	dnsTries int
	dnsV6    bool

	// TCP
	inbound      bool // a remote host opened it to the client host
	out          outcome
	cli, srv     netip.Addr
	cport, sport uint16
	cseq, sseq   uint32 // next sequence number each side sends
	synIPID      uint16
	synN         int
	synElapsed   int64
	giveUp       int64
	tls          bool
	rounds       int
	round        int
	segs         int // server segments left in this response
	seg          int // server segments sent in this response
	segSize      int
	respLen      int // HTTP: header plus body bytes of this response
	respSent     int
	unacked      int
	clientRandom int // offset in the random block of the ClientHello randoms
}

type gen struct {
	cfg    Config
	rng    *rand.Rand
	w      io.Writer
	frame  []byte
	quote  []byte
	block  []byte
	names  []name
	names4 []int32 // names with an A record
	names6 []int32 // names with an AAAA record
	slots  []slot
	flows  []*flow // sessions, busy or detached; free ones listed in free
	free   []int32
	heap   []int32 // flows in progress by next packet time
	now    int64
	ipID   uint16
	gap    int64 // mean spacing of one flow's packets
	ports  int   // ports per slot residue
	stride int   // slots per client
	stop   bool
	stats  Stats
	// Give-up times of timed-out attempts and lookups that may fall after
	// the last packet; older ones are pruned as time passes them.
	tcpGiveUps, dnsGiveUps []int64
}

// Write generates the capture that cfg describes and writes it to w as a
// classic pcap file. It returns what it wrote; on a write error the Stats
// describe the packets generated so far.
func Write(w io.Writer, cfg Config) (Stats, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	g := newGen(cfg, bw)
	if err := g.header(); err != nil {
		return g.stats, fmt.Errorf("writing pcap header: %w", err)
	}
	if err := g.run(); err != nil {
		return g.stats, fmt.Errorf("writing packet %d: %w", g.stats.Packets+1, err)
	}
	g.stats.TCP.TimeoutAfterEnd = after(g.tcpGiveUps, g.stats.EndNanos)
	g.stats.DNS.TimeoutAfterEnd = after(g.dnsGiveUps, g.stats.EndNanos)
	if err := bw.Flush(); err != nil {
		return g.stats, fmt.Errorf("flushing capture: %w", err)
	}
	return g.stats, nil
}

func newGen(cfg Config, w io.Writer) *gen {
	g := &gen{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		w:     w,
		frame: make([]byte, 1<<16),
		quote: make([]byte, 1<<16),
		block: make([]byte, randomBlockSize),
		slots: make([]slot, cfg.Flows),
		heap:  make([]int32, 0, 2*cfg.Flows),
	}
	for i := 0; i < len(g.block); i += 8 {
		binary.LittleEndian.PutUint64(g.block[i:], g.rng.Uint64())
	}
	g.names = newNames(cfg.Names, g.rng)
	for i := range g.names {
		if g.names[i].v4.IsValid() {
			g.names4 = append(g.names4, int32(i))
		}
		if g.names[i].v6.IsValid() {
			g.names6 = append(g.names6, int32(i))
		}
	}
	// Busy sessions average about one packet per 0.4 round trips; pick the
	// round trip that gives PacketsPerSecond over all slots.
	g.gap = int64(float64(cfg.Flows) * 1e9 / float64(cfg.PacketsPerSecond) / 0.4)
	if g.gap < 16 {
		g.gap = 16
	}
	g.stride = (cfg.Flows + cfg.Clients - 1) / cfg.Clients
	g.ports = portRange / g.stride
	g.stats.Flows = cfg.Flows
	start := cfg.Start.UnixNano()
	for _, w := range cfg.Windows {
		g.stats.Windows = append(g.stats.Windows, WindowStats{FromNanos: start + int64(w.From), ToNanos: start + int64(w.To),
			Connections: map[string]uint64{}, Lookups: map[string]uint64{}})
	}
	g.stats.StartNanos = start
	for i := range g.slots {
		g.slots[i] = slot{client: i % cfg.Clients, slotNo: i / cfg.Clients}
		// Stagger the first sessions over several of their lifetimes, or
		// they stay in step and the packet rate comes in waves.
		g.now = start + g.rng.Int64N(8*g.gap)
		g.push(g.newFlow(int32(i)))
	}
	g.now = start
	return g
}

// newFlow begins a session in slot s at g.now and returns its flow's index.
func (g *gen) newFlow(s int32) int32 {
	var id int32
	if n := len(g.free); n > 0 {
		id = g.free[n-1]
		g.free = g.free[:n-1]
		*g.flows[id] = flow{}
	} else {
		id = int32(len(g.flows))
		g.flows = append(g.flows, &flow{})
	}
	f := g.flows[id]
	f.slot = s
	g.begin(f)
	return id
}

// header writes the pcap global header.
func (g *gen) header() error {
	h := make([]byte, 24)
	magic := uint32(0xa1b2c3d4)
	if g.cfg.Nanosecond {
		magic = 0xa1b23c4d
	}
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 262144) // snap length
	binary.LittleEndian.PutUint32(h[20:], 1)      // Ethernet
	g.stats.Bytes += uint64(len(h))
	_, err := g.w.Write(h)
	return err
}

// run emits packets in time order until the target is reached and every
// session has ended.
func (g *gen) run() error {
	for len(g.heap) > 0 {
		id := g.heap[0]
		f := g.flows[id]
		g.now = f.next
		hold, done, err := g.step(f)
		if err != nil {
			return err
		}
		if !g.stop && g.reached() {
			g.stop = true
		}
		if done && f.kind == kindTCP && f.out == outTimeout && !f.inbound {
			g.tcpGiveUps = g.noteGiveUp(g.tcpGiveUps, g.now+hold)
		}
		if done && f.kind == kindDNS && f.dnsOut == dnsUnanswered {
			g.dnsGiveUps = g.noteGiveUp(g.dnsGiveUps, g.now+hold)
		}
		switch {
		case !done && (hold < second || f.detached):
			f.next = g.now + hold
			g.down(0)
		case !done:
			// A long wait: the session leaves its slot to a new one.
			f.next = g.now + hold
			f.detached = true
			g.down(0)
			if !g.stop {
				g.push(g.newFlow(f.slot))
			}
		case f.detached || g.stop:
			g.pop()
			g.free = append(g.free, id)
		default:
			g.now += hold
			g.begin(f)
			g.down(0)
		}
	}
	return nil
}

// reached says whether to stop starting sessions. The sessions in flight
// then finish, mostly long ones (TCP sessions outlive lookups), so it stops
// a little early: 0.3 average TCP sessions' share of the file per slot.
// Measured with 4096 flows, files land within 5% of the target from 200 MB
// to 2 GB. The early stop is skipped when it would exceed a quarter of the
// target (small files with many flows overshoot instead).
func (g *gen) reached() bool {
	st := &g.stats
	if st.TCP.Attempts == 0 {
		return false
	}
	drain := 0.3 * float64(g.cfg.Flows) / float64(st.TCP.Attempts)
	if b := uint64(g.cfg.TargetBytes); b > 0 {
		early := uint64(drain * float64(st.Bytes))
		if early > b/4 {
			early = 0
		}
		if st.Bytes+early >= b {
			return true
		}
	}
	if p := uint64(g.cfg.TargetPackets); p > 0 {
		early := uint64(drain * float64(st.Packets))
		if early > p/4 {
			early = 0
		}
		if st.Packets+early >= p {
			return true
		}
	}
	return false
}

// noteGiveUp adds a give-up time to list, first dropping the times already
// passed (the file will end after them) when the list has grown.
func (g *gen) noteGiveUp(list []int64, at int64) []int64 {
	if len(list) == cap(list) {
		kept := list[:0]
		for _, t := range list {
			if t > g.now {
				kept = append(kept, t)
			}
		}
		list = kept
	}
	return append(list, at)
}

// after counts the times in list later than end.
func after(list []int64, end int64) uint64 {
	var n uint64
	for _, t := range list {
		if t > end {
			n++
		}
	}
	return n
}

func (g *gen) push(id int32) {
	g.heap = append(g.heap, id)
	i := len(g.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !g.less(g.heap[i], g.heap[p]) {
			return
		}
		g.heap[i], g.heap[p] = g.heap[p], g.heap[i]
		i = p
	}
}

// pop removes the first flow from the heap.
func (g *gen) pop() {
	last := len(g.heap) - 1
	g.heap[0] = g.heap[last]
	g.heap = g.heap[:last]
	g.down(0)
}

// less orders slots by next packet time, then slot number, so the order
// never depends on anything but the configuration.
func (g *gen) less(a, b int32) bool {
	fa, fb := g.flows[a].next, g.flows[b].next
	return fa < fb || (fa == fb && a < b)
}

func (g *gen) down(i int) {
	h := g.heap
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && g.less(h[c+1], h[c]) {
			c++
		}
		if !g.less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// pick returns a skewed random index below n: low indices (popular names)
// come up far more often than high ones.
func (g *gen) pick(n int) int {
	return g.rng.IntN(g.rng.IntN(n) + 1)
}

// begin starts the next session in slot f at g.now (plus a short think
// time): a DNS-only lookup while DNS is below its share of packets, else a
// TCP connection, usually preceded by its own lookup.
func (g *gen) begin(f *flow) {
	cfg := &g.cfg
	sl := &g.slots[f.slot]
	sl.gen++
	if cfg.Clients > cfg.Flows {
		// More hosts than slots: each session of a slot comes from the
		// next host in turn, so every host is used.
		sl.client = (int(f.slot) + cfg.Flows*sl.gen) % cfg.Clients
	}
	f.client = sl.client
	f.detached = false
	f.rtt = g.gap/2 + g.rng.Int64N(g.gap+1)
	f.next = g.now + 1 + g.rng.Int64N(f.rtt/4+1)
	port := portBase + sl.slotNo + g.stride*(sl.gen%g.ports)
	f.cport = uint16(port)
	f.dnsPort = uint16(portBase + (port-portBase+portRange/2)%portRange)
	f.dnsID = uint16(g.rng.Uint32())
	f.dnsTries = 0
	f.dnsOut = dnsAnswered
	f.dnsV6 = f.client%8 == 7
	st := &g.stats

	if cfg.DNSShare > 0 && float64(st.DNS.Packets) < cfg.DNSShare*float64(st.Packets) {
		f.kind = kindDNS
		f.state = stQuery
		f.name = int32(g.pick(len(g.names)))
		f.qtype = typeA
		if g.rng.IntN(5) < 2 {
			f.qtype = typeAAAA
		}
		switch r := g.rng.IntN(100); {
		case r < 2:
			f.dnsOut = dnsUnanswered
		case r < 3:
			f.dnsOut = dnsServFail
		}
		g.countLookup(f)
		return
	}

	f.kind = kindTCP
	f.inbound = false
	if cfg.InboundShare > 0 && g.rng.Float64() < cfg.InboundShare {
		g.beginInbound(f)
		return
	}
	f.v6 = g.rng.Float64() < cfg.IPv6Share && len(g.names6) > 0
	var nm *name
	if f.v6 {
		f.name = g.names6[g.pick(len(g.names6))]
		nm = &g.names[f.name]
		f.srv = nm.v6
		f.cli = clientV6(f.client)
		f.qtype = typeAAAA
		st.TCP.IPv6++
	} else {
		f.name = g.names4[g.pick(len(g.names4))]
		nm = &g.names[f.name]
		f.srv = nm.v4
		f.cli = clientV4(f.client)
		f.qtype = typeA
	}
	f.sport = nm.port
	f.tls = nm.port == 443
	f.state = stSYN
	if cfg.DNSShare > 0 && g.rng.IntN(10) < 7 {
		f.state = stQuery
		st.TCP.Looked++
		g.countLookup(f)
	}
	f.cseq, f.sseq = g.rng.Uint32(), g.rng.Uint32()
	f.synN, f.synElapsed = 0, 0
	f.round, f.rounds = 0, 1+g.rng.IntN(3)
	st.TCP.Attempts++
	switch r := g.rng.Float64(); {
	case r < cfg.DropShare:
		f.out = outTimeout
		f.giveUp = giveUps[g.rng.IntN(len(giveUps))]
		st.TCP.Timeout++
		st.TCP.TimeoutNs += f.giveUp
	case r < cfg.DropShare+cfg.RefuseShare:
		f.out = outRefused
		st.TCP.Refused++
	case r < cfg.DropShare+cfg.RefuseShare+cfg.RejectShare:
		f.out = outRejected
		st.TCP.Rejected++
	default:
		f.out = outEstablished
		st.TCP.Established++
		if f.tls {
			st.TCP.TLS++
		} else {
			st.TCP.HTTP++
		}
	}
}

// beginInbound makes f a session a remote host opens to f's client host:
// served like an outbound one (the client host is the server), or a SYN
// scan of a silent port.
func (g *gen) beginInbound(f *flow) {
	st := &g.stats
	f.inbound = true
	f.v6 = false
	f.name = g.names4[g.pick(len(g.names4))] // for the request's Host only
	f.cli = netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + g.rng.IntN(254))})
	f.srv = clientV4(f.client)
	f.sport = 22
	f.tls = false
	f.state = stSYN
	f.cseq, f.sseq = g.rng.Uint32(), g.rng.Uint32()
	f.synN, f.synElapsed = 0, 0
	f.round, f.rounds = 0, 1
	st.Inbound.Attempts++
	if g.rng.Float64() < g.cfg.ScanShare {
		f.out = outTimeout
		f.giveUp = second // one SYN, then the scanner moves on
		f.sport = uint16(1 + g.rng.IntN(1024))
		st.Inbound.Scans++
		return
	}
	f.sport = 8443
	f.out = outEstablished
	st.Inbound.Established++
}

// lookupClass is the outcome a correct analyzer reports for f's lookup:
// answered, nodata, nxdomain, servfail or timeout.
func (g *gen) lookupClass(f *flow) string {
	nm := &g.names[f.name]
	switch {
	case f.dnsOut == dnsUnanswered:
		return "timeout"
	case f.dnsOut == dnsServFail:
		return "servfail"
	case nm.nx:
		return "nxdomain"
	case f.qtype == typeA && !nm.v4.IsValid(), f.qtype == typeAAAA && !nm.v6.IsValid():
		return "nodata" // with or without a CNAME chain
	}
	return "answered"
}

// connClass is the outcome a correct analyzer reports for f's connection.
func connClass(o outcome) string {
	switch o {
	case outRefused:
		return "refused"
	case outRejected:
		return "rejected"
	case outTimeout:
		return "timeout"
	}
	return "established"
}

// inWindows counts a call starting now in the windows that hold it, on the
// timestamp as written.
func (g *gen) inWindows(lookup bool, f *flow) {
	if len(g.stats.Windows) == 0 {
		return
	}
	t := g.now
	if !g.cfg.Nanosecond {
		t -= t % 1000
	}
	for i := range g.stats.Windows {
		w := &g.stats.Windows[i]
		if t < w.FromNanos || t > w.ToNanos {
			continue
		}
		switch {
		case lookup:
			w.Lookups[g.lookupClass(f)]++
		case f.inbound:
			w.Inbound++
		default:
			w.Connections[connClass(f.out)]++
		}
	}
}

// countLookup records the expected outcome of the lookup f is about to do.
func (g *gen) countLookup(f *flow) {
	d := &g.stats.DNS
	d.Lookups++
	nm := &g.names[f.name]
	switch {
	case f.dnsOut == dnsUnanswered:
		d.Timeout++
	case f.dnsOut == dnsServFail:
		d.ServFail++
	case nm.nx:
		d.NXDomain++
	case f.qtype == typeA && !nm.v4.IsValid(), f.qtype == typeAAAA && !nm.v6.IsValid():
		d.NoData++
		if nm.cname != nil {
			d.NoDataCNAME++
		}
	default:
		d.NoError++
	}
}

func clientV4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte((i + 1) >> 8), byte(i + 1)})
}

func clientV6(i int) netip.Addr {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x18}
	binary.BigEndian.PutUint16(a[14:], uint16(i+1))
	return netip.AddrFrom16(a)
}

// step writes the next packet of f. It returns the delay to f's next
// packet, or done and the time the slot stays idle before its next session.
func (g *gen) step(f *flow) (delay int64, done bool, err error) {
	st := &g.stats
	switch f.state {
	case stQuery:
		f.dnsTries++
		st.DNS.Queries++
		if f.dnsTries == 1 {
			g.inWindows(true, f)
		}
		if err := g.dns(f, true); err != nil {
			return 0, false, err
		}
		if f.dnsOut == dnsUnanswered {
			if f.dnsTries < 2 {
				return dnsRetry, false, nil
			}
			return dnsRetry, true, nil // the caller gives up after its last timeout
		}
		f.state = stAnswer
		return f.rtt, false, nil

	case stAnswer:
		st.DNS.Responses++
		if err := g.dns(f, false); err != nil {
			return 0, false, err
		}
		if f.kind == kindDNS {
			return f.rtt / 4, true, nil
		}
		f.state = stSYN
		return 1 + f.rtt/8, false, nil

	case stSYN:
		f.synN++
		if f.synN == 1 {
			g.inWindows(false, f)
		}
		if f.inbound {
			// Not egress: counted in Inbound only.
			if err := g.tcp(f, true, flagSYN, f.cseq, 0, 0); err != nil {
				return 0, false, err
			}
			if f.out == outTimeout {
				return f.giveUp, true, nil
			}
			f.state = stSYNACK
			return f.rtt, false, nil
		}
		st.TCP.SYNs++
		if f.synN > 1 {
			st.TCP.Retrans++
		}
		if err := g.tcp(f, true, flagSYN, f.cseq, 0, 0); err != nil {
			return 0, false, err
		}
		switch f.out {
		case outEstablished:
			f.state = stSYNACK
		case outRefused:
			f.state = stRST
		case outRejected:
			f.state = stICMP
			return f.rtt / 2, false, nil
		case outTimeout:
			wait := second // the k-th retransmission timer, Linux >= 6.5
			if f.synN > linearSYNs {
				wait <<= f.synN - linearSYNs
			}
			if f.synElapsed+wait < f.giveUp {
				f.synElapsed += wait
				return wait, false, nil
			}
			return f.giveUp - f.synElapsed, true, nil
		}
		return f.rtt, false, nil

	case stSYNACK:
		if !f.inbound {
			st.TCP.SYNACKs++
		}
		f.cseq++
		err := g.tcp(f, false, flagSYN|flagACK, f.sseq, f.cseq, 0)
		f.sseq++
		f.state = stACK
		return 1 + f.rtt/8, false, err

	case stRST:
		st.TCP.RSTs++
		return f.rtt / 4, true, g.tcp(f, false, flagRST|flagACK, 0, f.cseq+1, 0)

	case stICMP:
		st.TCP.ICMPs++
		return f.rtt / 4, true, g.icmpReject(f, f.cseq)

	case stACK:
		f.state = stRequest
		return 1 + f.rtt/8, false, g.tcp(f, true, flagACK, f.cseq, f.sseq, 0)

	case stRequest:
		n := g.request(f)
		err := g.tcp(f, true, flagPSH|flagACK, f.cseq, f.sseq, n)
		f.cseq += uint32(n)
		g.startResponse(f)
		f.state = stResponse
		return f.rtt, false, err

	case stResponse:
		n := g.responseSegment(f)
		flags := uint8(flagACK)
		if f.segs == 1 {
			flags |= flagPSH
		}
		err := g.tcp(f, false, flags, f.sseq, f.cseq, n)
		f.sseq += uint32(n)
		f.segs--
		f.seg++
		f.unacked++
		if f.unacked == 2 || f.segs == 0 {
			f.state = stClientAck
		}
		return 1 + f.rtt/16, false, err

	case stClientAck:
		err := g.tcp(f, true, flagACK, f.cseq, f.sseq, 0)
		f.unacked = 0
		switch {
		case f.segs > 0:
			f.state = stResponse
			return 1 + f.rtt/4, false, err
		case f.round+1 < f.rounds && !g.stop: // at the end, close after this round
			f.round++
			f.state = stRequest
			return 1 + f.rtt/2, false, err
		}
		f.state = stFin
		return 1 + f.rtt/2, false, err

	case stFin:
		err := g.tcp(f, true, flagFIN|flagACK, f.cseq, f.sseq, 0)
		f.cseq++
		f.state = stFinServer
		return f.rtt, false, err

	case stFinServer:
		err := g.tcp(f, false, flagFIN|flagACK, f.sseq, f.cseq, 0)
		f.sseq++
		f.state = stLastAck
		return 1 + f.rtt/8, false, err

	case stLastAck:
		return f.rtt / 2, true, g.tcp(f, true, flagACK, f.cseq, f.sseq, 0)
	}
	return 0, false, fmt.Errorf("flow in unknown state %d", f.state)
}

// dns writes the query (or the answer) of f's lookup.
func (g *gen) dns(f *flow, query bool) error {
	g.stats.DNS.Packets++
	cli, res := clientV4(f.client), resolverV4
	if f.dnsV6 {
		cli, res = clientV6(f.client), resolverV6
	}
	p := g.frame[l4Off(f.dnsV6)+udpLen:]
	nm := &g.names[f.name]
	if query {
		n := dnsQuery(p, f.dnsID, nm, f.qtype)
		return g.udp(f.client, true, cli, res, f.dnsPort, 53, n)
	}
	n := dnsAnswer(p, f.dnsID, nm, f.qtype, f.dnsOut == dnsServFail)
	return g.udp(f.client, false, res, cli, 53, f.dnsPort, n)
}

// randomBytes returns n bytes from a random place in the random block.
func (g *gen) randomBytes(n int) []byte {
	off := g.rng.IntN(len(g.block) - n)
	return g.block[off : off+n]
}

// request writes the client's request of the current round into the payload
// buffer and returns its length.
func (g *gen) request(f *flow) int {
	p := g.tcpPayload(f, false)
	nm := &g.names[f.name]
	if !f.tls {
		b := append(p[:0], "GET "...)
		b = append(b, nm.path...)
		b = append(b, " HTTP/1.1\r\nHost: "...)
		b = append(b, nm.text...)
		b = append(b, "\r\nUser-Agent: gencap/1\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"...)
		return len(b)
	}
	if f.round == 0 {
		f.clientRandom = g.rng.IntN(len(g.block) - 96)
		return clientHello(p, nm.text, g.block[f.clientRandom:f.clientRandom+96])
	}
	n := 100 + g.rng.IntN(500)
	appData(p, n, g.randomBytes(n))
	return n
}

// startResponse sizes the server's response to the current request. While
// the mean frame is below the target it sends full segments, else short ones.
func (g *gen) startResponse(f *flow) {
	st := &g.stats
	mss := maxSeg - tcpLen
	if f.v6 {
		mss -= ip6Len - ip4Len
	}
	if float64(st.WireBytes) < float64(g.cfg.MeanPacketSize)*float64(st.Packets) {
		f.segSize, f.segs = mss, 2+g.rng.IntN(11)
	} else {
		f.segSize, f.segs = 150+g.rng.IntN(400), 1+g.rng.IntN(4)
	}
	f.seg, f.unacked, f.respSent = 0, 0, 0
	if f.tls && f.round == 0 {
		f.segs++ // the ServerHello goes first, in a segment of its own
	}
	f.respLen = f.segs * f.segSize
}

// httpHeader appends the response header for a body of n bytes; pad adds
// one space of optional whitespace, for lengths no digit count fits.
func httpHeader(b []byte, n int, pad bool) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
	if pad {
		b = append(b, ' ')
	}
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "\r\n\r\n"...)
}

// httpSplit returns the body length and padding for which header and body
// fill exactly total bytes.
func httpSplit(total int) (body int, pad bool) {
	var hb [128]byte
	fixed := len(httpHeader(hb[:0], 0, false)) - 1
	for _, pad := range []bool{false, true} {
		for d := 1; d <= 9; d++ {
			body := total - fixed - d
			if pad {
				body--
			}
			if body >= 0 && len(strconv.Itoa(body)) == d {
				return body, pad
			}
		}
	}
	return 0, false // total too short for a header; startResponse prevents this
}

// responseSegment writes the payload of the server's next segment and
// returns its length.
func (g *gen) responseSegment(f *flow) int {
	p := g.tcpPayload(f, false)
	n := f.segSize
	switch {
	case f.tls && f.round == 0 && f.seg == 0:
		r := f.clientRandom
		return serverHello(p, g.block[r+32:r+64], g.randomBytes(64))
	case f.tls:
		appData(p, n, g.randomBytes(n))
	case f.seg == 0:
		// Header and body fill respLen bytes; the header's length depends
		// on the digits of the body length.
		var hb [128]byte
		body, pad := httpSplit(f.respLen)
		h := httpHeader(hb[:0], body, pad)
		copy(p, h)
		copy(p[len(h):n], g.randomBytes(n-len(h)))
	default:
		copy(p[:n], g.randomBytes(n))
	}
	return n
}
