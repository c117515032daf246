// Package event is the observation model shared by every capture source and
// the analyzer: time-stamped facts about packets, sockets and processes.
//
// Sources (pcap files, live AF_PACKET, eBPF tracepoints) turn what they see
// into these values; package analyze turns a stream of them into a report.
// Nothing here knows about files, kernels or output formats.
package event

import "net/netip"

// IP protocol numbers used in the model.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// TCP flag bits as they appear in the TCP header's flags byte.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
)

// Direction says whether the capturing host sent or received a packet,
// where the capture records it (Linux cooked headers, pcapng flags, NFLOG).
type Direction uint8

const (
	DirUnknown Direction = iota
	DirIn                // received by the capturing host
	DirOut               // sent by the capturing host
)

// Process identifies the process behind an observation.
type Process struct {
	PID  int
	Comm string
	// Parent is the parent's pid where the source knows it (0: unknown):
	// names follow the asker's process tree.
	Parent int
}

// Packet is one decoded packet: the header facts the analyzer needs.
// Payload and Proc point into buffers owned by the source and are valid only
// until the source delivers the next packet; the analyzer copies what it keeps.
type Packet struct {
	Time    int64 // nanoseconds since the Unix epoch
	WireLen int   // length on the wire, as recorded
	Iface   int   // capture interface index (pcapng), 0 otherwise
	Dir     Direction

	Src, Dst         netip.Addr
	Proto            uint8 // ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6
	SrcPort, DstPort uint16

	// TCP fields, valid when Proto is ProtoTCP.
	Flags uint8
	Seq   uint32
	Ack   uint32

	// ICMP fields, valid when Proto is ProtoICMP or ProtoICMPv6.
	ICMPType, ICMPCode uint8
	// Quoted is the offending packet's header quoted by an ICMP error.
	Quoted Quoted

	// Payload is the transport payload that was captured (may be shorter than
	// on the wire when the capture was truncated by a snap length).
	Payload []byte

	Proc *Process // nil where the capture does not say

	// Frame is the link-layer frame as captured (Linux cooked v2) when a
	// live source keeps it for a pcapng copy; nil otherwise. Payload then
	// points into it.
	Frame []byte
}

// Quoted is the IP and transport header that an ICMP error quotes.
type Quoted struct {
	Valid            bool
	Proto            uint8
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Seq              uint32
	HasSeq           bool // the quote was long enough to hold the TCP sequence number
}

// SockKind is what happened to a socket in the kernel.
type SockKind uint8

const (
	// SockConnect: the socket left CLOSE for SYN_SENT (an outbound connect).
	SockConnect SockKind = iota + 1
	// SockRetransmit: the kernel retransmitted the SYN.
	SockRetransmit
	// SockEstablished: the handshake completed.
	SockEstablished
	// SockReset: a RST was received in SYN_SENT (connection refused).
	SockReset
	// SockError: the kernel reported an error on the socket (Errno is set).
	SockError
	// SockClose: the socket went to CLOSE; when it was still in SYN_SENT the
	// caller gave up (its own connect timeout) unless an error came first.
	SockClose
	// SockUDPConnect: a UDP socket was connected to a DNS server (port 53).
	// Src is its local address: the datagrams sent from it are the
	// process's lookups. Proto is ProtoUDP; not a call of its own.
	SockUDPConnect
)

// Sock is one socket-level observation from the kernel (eBPF tracepoints).
type Sock struct {
	Time   int64 // nanoseconds since the Unix epoch
	Kind   SockKind
	Cookie uint64 // identity of the kernel socket, unique while it lives
	Proto  uint8
	Src    netip.AddrPort
	Dst    netip.AddrPort
	Errno  int // for SockError: ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH...
	Proc   *Process
	// Stack is the user-space call stack of the thread that made the
	// socket, innermost frame first, symbolized while the process lived
	// (egress --stacks). Set on SockConnect and on a SockError for a
	// connect() that failed before any SYN; nil otherwise.
	Stack []Frame
}

// Frame is one symbolized frame of a user-space stack. Function, File and
// Line are empty or zero where the code has no symbols (stripped, JIT code
// without a perf map): Module and Offset still say where it is, and are
// never guessed.
type Frame struct {
	Function string // e.g. "main.checkForUpdates", "check_for_updates", "phoneHome"
	File     string // source file, where the symbols say (Go's pclntab, a perf map)
	Line     int
	Module   string // mapped file (path as in /proc/PID/maps), or "[perf-map]", "[anon]", "[unknown]"
	Offset   uint64 // address in Module: its ELF virtual address (for addr2line), or the raw address
}

// Source statistics that every source reports, so no loss is silent.
type Stats struct {
	Packets     uint64 // packets read
	Bytes       uint64 // bytes on the wire of those packets
	Undecodable uint64 // packets whose headers could not be decoded
	Truncated   uint64 // packets cut short by the snap length before their headers ended
	Lost        uint64 // events the source lost (ring buffer full, kernel drops)
}

// DNS is one whole DNS message seen outside a packet flow: a query or an
// answer relayed by egress run's DNS proxy. Msg is valid only during the
// call that delivers it, as a Packet's Payload.
type DNS struct {
	Time     int64          // nanoseconds since the Unix epoch
	Client   netip.AddrPort // the asker's socket
	Server   netip.AddrPort // the resolver asked
	Response bool           // false: Client sent Msg to Server; true: the answer back
	TCP      bool           // the client used DNS over TCP
	// Refused, on a response: the proxy refused the name itself (policy),
	// without asking the resolver.
	Refused bool
	Msg     []byte
	Proc    *Process // the asker, nil where unknown
}

// Blocked is one call egress run's cgroup programs refused or reported
// (internal/enforce/block): a connect() or sendmsg() refused with EPERM, a call the
// tracepoints do not see, a packet of the catch-all, a DNS connect steered
// to the proxy, a step of a child cgroup's TCP connection.
type Blocked struct {
	Time    int64 // nanoseconds since the Unix epoch
	Kind    BlockedKind
	Proto   uint8 // IP protocol: ProtoTCP, ProtoUDP, ProtoICMP, ...
	Dst     netip.AddrPort
	Refused bool   // KindPacket: the packet was dropped
	SkType  uint8  // 1 stream, 2 datagram, 3 raw
	UID     uint32 // of the process
	ConnOp  uint8  // BlockedConn: ConnSYN, ConnEstablished, ...
	Cookie  uint64 // BlockedConn: the socket
	Proc    *Process
}

// BlockedKind is what a Blocked record says (the values of internal/enforce/block).
type BlockedKind uint8

const (
	// BlockedRefused: connect() or sendmsg() refused with EPERM.
	BlockedRefused BlockedKind = iota
	// BlockedCall: a call let through that the tracepoints do not see (UDP).
	BlockedCall
	// BlockedPacket: a packet of a socket the hooks do not cover (ICMP,
	// raw, other protocols), caught by the catch-all; Refused: dropped.
	BlockedPacket
	// BlockedSteered: a TCP connect to a DNS server steered to the proxy;
	// Dst is the server the app asked for.
	BlockedSteered
	// BlockedConn: a step (ConnOp) of a child cgroup's TCP connection.
	BlockedConn
)

// ConnOp values of BlockedConn records.
const (
	ConnSYN         uint8 = 1 // the first SYN is about to leave
	ConnEstablished uint8 = 2
	ConnRetransmit  uint8 = 3 // a SYN was sent again
	ConnClosed      uint8 = 4 // closed before it was established
)

// Undecoded is a captured frame whose headers could not be used (truncated,
// undecodable, or a fragment held for reassembly). The source counts it in
// its Stats; it travels on only so a pcapng copy of the capture holds it.
type Undecoded struct {
	Time    int64
	Frame   []byte // link-layer frame as captured (Linux cooked v2)
	WireLen int
}

// Observation is any of the values a source emits: *Packet, *Sock, *DNS,
// *Blocked, *Undecoded or *Activity. When is its time, Unix ns: the pipeline puts the
// observations of all sources in that order.
type Observation interface {
	When() int64
}

func (p *Packet) When() int64    { return p.Time }
func (s *Sock) When() int64      { return s.Time }
func (d *DNS) When() int64       { return d.Time }
func (b *Blocked) When() int64   { return b.Time }
func (u *Undecoded) When() int64 { return u.Time }
func (a *Activity) When() int64  { return a.Time }

// Activity is the scheduler's view of the watched processes (egress watch
// and run): from Time on, at least one of their threads runs or waits for
// a CPU (Running), or none does: they all sleep, waiting on something.
// Sources send one at attach (the state then) and one at every change.
type Activity struct {
	Time    int64 // nanoseconds since the Unix epoch
	Running bool
}
