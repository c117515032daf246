package dnsproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egress-dev/egress/dnsmsg"
)

// Policy decides which names the proxied app may resolve.
type Policy interface {
	// Ask is called before a query is forwarded; false refuses the name at
	// once, without asking the resolver.
	Ask(name string) bool
	// Answered is called with the resolver's answer to an allowed query:
	// the CNAME targets and the addresses (A and AAAA). It returns whether
	// the answer may be relayed; when it returns true, whatever the app
	// needs to reach the addresses must already be in place.
	Answered(name string, cnames []string, addrs []netip.Addr) bool
}

// Exchange is one query the proxy handled, and its reply.
type Exchange struct {
	Client    netip.AddrPort // as the proxy saw it (loopback)
	Upstream  netip.AddrPort // the resolver asked first
	TCP       bool
	Query     []byte
	QueryTime int64  // Unix nanoseconds
	Reply     []byte // nil when the proxy did not answer
	ReplyTime int64
	Refused   bool // the proxy refused the name (policy)
}

// Config configures a Proxy.
type Config struct {
	// Upstreams are the resolvers to forward to, tried in order.
	Upstreams []netip.AddrPort
	Policy    Policy
	// Observe, when set, sees each exchange before the reply is sent. It
	// may be called from many goroutines; the exchange is its to keep.
	Observe func(Exchange)
	// Timeout bounds each upstream attempt (default 2 s).
	Timeout time.Duration
	// MaxInFlight bounds the queries being forwarded at once (default
	// 256): past it a query is answered SERVFAIL at once, counted in
	// Stats.Overloaded and still observed. It bounds the proxy's memory
	// (a goroutine and a 64 KiB buffer per query) under a query flood.
	MaxInFlight int
	// MaxTCP bounds the open TCP connections (default 64); past it a new
	// connection is closed unanswered and counted in Stats.TCPRefused.
	MaxTCP int
}

// Stats counts what the proxy did not handle normally: nothing is dropped
// silently.
type Stats struct {
	// Overloaded queries were answered SERVFAIL without being forwarded
	// (MaxInFlight queries were in flight); they are observed as such.
	Overloaded uint64
	// TCPRefused connections were closed unread (MaxTCP were open).
	TCPRefused uint64
	// KernelDropped queries never reached the proxy: the kernel dropped
	// them when its socket buffer was full (SO_RXQ_OVFL).
	KernelDropped uint64
}

// Proxy listens on 127.0.0.1 (and [::1] where it exists) on one port, UDP
// and TCP.
type Proxy struct {
	cfg      Config
	port     uint16
	udp      []*net.UDPConn
	tcp      []*net.TCPListener
	wg       sync.WaitGroup
	inFlight chan struct{} // a token per query being forwarded
	tcpOpen  chan struct{} // a token per open TCP connection

	overloaded, tcpRefused atomic.Uint64
	kernelDropped          []atomic.Uint64 // per UDP socket: the kernel's cumulative count
}

// maxMsg is the largest DNS message the proxy handles (TCP's limit).
const maxMsg = 65535

// Listen binds the proxy's sockets on a free loopback port.
func Listen(cfg Config) (*Proxy, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("dns proxy: no upstream resolver")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.MaxTCP <= 0 {
		cfg.MaxTCP = 64
	}
	var lastErr error
	for range 20 {
		p, err := bindAll(cfg)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("dns proxy: bind loopback: %w", lastErr)
}

func bindAll(cfg Config) (*Proxy, error) {
	u4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, port: uint16(u4.LocalAddr().(*net.UDPAddr).Port), udp: []*net.UDPConn{u4}}
	t4, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p.port)})
	if err != nil {
		p.close()
		return nil, err // the port is taken for TCP: try another
	}
	p.tcp = append(p.tcp, t4)
	// IPv6 loopback is optional: without it, the hooks refuse DNS to IPv6
	// servers and resolvers fall back to an IPv4 one.
	if u6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: int(p.port)}); err == nil {
		if t6, err := net.ListenTCP("tcp6", &net.TCPAddr{IP: net.IPv6loopback, Port: int(p.port)}); err == nil {
			p.udp = append(p.udp, u6)
			p.tcp = append(p.tcp, t6)
		} else {
			u6.Close()
		}
	}
	return p, nil
}

// Stats returns the proxy's counts so far.
func (p *Proxy) Stats() Stats {
	st := Stats{Overloaded: p.overloaded.Load(), TCPRefused: p.tcpRefused.Load()}
	for i := range p.kernelDropped {
		st.KernelDropped += p.kernelDropped[i].Load()
	}
	return st
}

// Port is the loopback port the proxy listens on.
func (p *Proxy) Port() uint16 { return p.port }

// IPv6 reports whether the proxy also listens on [::1].
func (p *Proxy) IPv6() bool { return len(p.udp) > 1 }

func (p *Proxy) close() {
	for _, c := range p.udp {
		c.Close()
	}
	for _, l := range p.tcp {
		l.Close()
	}
}

// Serve answers queries until ctx is done, then closes the sockets, waits
// for queries in flight and returns ctx.Err().
func (p *Proxy) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, p.close)
	defer stop()
	p.inFlight = make(chan struct{}, p.cfg.MaxInFlight)
	p.tcpOpen = make(chan struct{}, p.cfg.MaxTCP)
	p.kernelDropped = make([]atomic.Uint64, len(p.udp))
	for i, c := range p.udp {
		p.wg.Go(func() { p.serveUDP(ctx, c, &p.kernelDropped[i]) })
	}
	for _, l := range p.tcp {
		p.wg.Go(func() { p.serveTCP(ctx, l) })
	}
	<-ctx.Done()
	p.close()
	p.wg.Wait()
	return ctx.Err()
}

func (p *Proxy) serveUDP(ctx context.Context, c *net.UDPConn, dropped *atomic.Uint64) {
	// The kernel counts the datagrams it dropped for a full buffer and
	// tells with each one read (SO_RXQ_OVFL).
	countDrops(c)
	buf := make([]byte, maxMsg)
	oob := make([]byte, 64)
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return // closed by Serve
		}
		if v, ok := rxqOverflow(oob[:oobn]); ok {
			dropped.Store(uint64(v))
		}
		q := append([]byte(nil), buf[:n]...)
		select {
		case p.inFlight <- struct{}{}:
		default:
			// Full: answer at once rather than hold another goroutine
			// and buffer; the query is still observed.
			p.overloaded.Add(1)
			if reply := p.overload(from, q, false); reply != nil {
				c.WriteToUDPAddrPort(reply, from)
			}
			continue
		}
		p.wg.Go(func() {
			defer func() { <-p.inFlight }()
			if reply := p.handle(ctx, from, q, false); reply != nil {
				c.WriteToUDPAddrPort(reply, from)
			}
		})
	}
}

// overload answers q SERVFAIL without forwarding it, and observes it.
func (p *Proxy) overload(from netip.AddrPort, q []byte, tcp bool) []byte {
	var m dnsmsg.Msg
	m.Unpack(q)
	if !m.HeaderOK() || m.Response {
		return nil
	}
	now := time.Now().UnixNano()
	reply := Reply(q, rcodeServFail)
	if p.cfg.Observe != nil {
		p.cfg.Observe(Exchange{Client: from, Upstream: p.cfg.Upstreams[0], TCP: tcp, Query: q, QueryTime: now,
			Reply: reply, ReplyTime: now})
	}
	return reply
}

func (p *Proxy) serveTCP(ctx context.Context, l *net.TCPListener) {
	for {
		conn, err := l.AcceptTCP()
		if err != nil {
			return
		}
		select {
		case p.tcpOpen <- struct{}{}:
		default:
			p.tcpRefused.Add(1)
			conn.Close()
			continue
		}
		p.wg.Go(func() {
			defer func() { <-p.tcpOpen }()
			defer conn.Close()
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			from := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
			// A client may send several queries on one connection; each
			// gets its answer in turn, and an idle connection is closed.
			for range 100 {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				q, err := readTCPMsg(conn)
				if err != nil {
					return
				}
				reply := p.handle(ctx, from, q, true)
				if reply == nil {
					return
				}
				if _, err := conn.Write(tcpFrame(reply)); err != nil {
					return
				}
			}
		})
	}
}

func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func tcpFrame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// handle answers one query: nil means no answer at all (not a query).
func (p *Proxy) handle(ctx context.Context, from netip.AddrPort, q []byte, tcp bool) []byte {
	x := Exchange{Client: from, Upstream: p.cfg.Upstreams[0], TCP: tcp, Query: q, QueryTime: time.Now().UnixNano()}
	var m dnsmsg.Msg
	err := m.Unpack(q)
	if !m.HeaderOK() || m.Response {
		return nil
	}
	var reply []byte
	switch {
	case err != nil || !m.QuestionOK() || m.Opcode != 0 || m.QDCount != 1:
		reply = Reply(q, rcodeFormErr)
	case !p.cfg.Policy.Ask(string(m.QName)):
		reply, x.Refused = Reply(q, rcodeRefused), true
	default:
		name := string(m.QName)
		reply = p.forward(ctx, q, tcp)
		if reply == nil {
			reply = Reply(q, rcodeServFail)
			break
		}
		var a dnsmsg.Msg
		if err := a.Unpack(reply); err != nil && !a.HeaderOK() {
			reply = Reply(q, rcodeServFail)
			break
		}
		var cnames []string
		var addrs []netip.Addr
		for _, rr := range a.Answers {
			switch {
			case rr.Target != nil:
				cnames = append(cnames, string(rr.Target))
			case rr.Addr.IsValid():
				addrs = append(addrs, rr.Addr)
			}
		}
		if !p.cfg.Policy.Answered(name, cnames, addrs) {
			reply, x.Refused = Reply(q, rcodeRefused), true
		}
	}
	x.Reply, x.ReplyTime = reply, time.Now().UnixNano()
	if p.cfg.Observe != nil {
		p.cfg.Observe(x)
	}
	return reply
}

// forward asks each upstream in turn and returns the first reply whose ID
// matches. It asks over UDP, as resolvers expect; a TCP client whose answer
// did not fit gets it over TCP, a UDP client gets the truncated answer and
// retries over TCP itself.
func (p *Proxy) forward(ctx context.Context, q []byte, tcp bool) []byte {
	for _, up := range p.cfg.Upstreams {
		actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		r, err := exchange(actx, up, q, false)
		if err == nil && tcp && len(r) >= 12 && r[2]&0x02 != 0 {
			r, err = exchange(actx, up, q, true)
		}
		cancel()
		if err == nil && len(r) >= 12 && r[0] == q[0] && r[1] == q[1] {
			return r
		}
	}
	return nil
}

func exchange(ctx context.Context, up netip.AddrPort, q []byte, tcp bool) ([]byte, error) {
	var d net.Dialer
	network := "udp"
	if tcp {
		network = "tcp"
	}
	conn, err := d.DialContext(ctx, network, up.String())
	if err != nil {
		return nil, fmt.Errorf("dial resolver %s: %w", up, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if tcp {
		if _, err := conn.Write(tcpFrame(q)); err != nil {
			return nil, fmt.Errorf("ask resolver %s: %w", up, err)
		}
		return readTCPMsg(conn)
	}
	if _, err := conn.Write(q); err != nil {
		return nil, fmt.Errorf("ask resolver %s: %w", up, err)
	}
	buf := make([]byte, maxMsg)
	for range 8 { // skip stray datagrams with another ID
		n, err := conn.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("read resolver %s: %w", up, err)
		}
		if n >= 12 && buf[0] == q[0] && buf[1] == q[1] {
			return buf[:n:n], nil
		}
	}
	return nil, fmt.Errorf("resolver %s: no matching reply", up)
}

const (
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeRefused  = 5
)

// Reply builds an answer with rcode and no records to query q: the header
// with QR and RA set and the question copied when it can be found without
// following compression pointers. q must be at least 12 bytes long.
func Reply(q []byte, rcode uint8) []byte {
	end := questionEnd(q)
	r := make([]byte, 12, max(end, 12))
	copy(r, q[:12])
	r[2] = 0x80 | (q[2] & 0x79) // QR, keep opcode and RD; clear AA and TC
	r[3] = 0x80 | rcode&0x0f    // RA; Z, AD, CD cleared
	binary.BigEndian.PutUint16(r[6:], 0)
	binary.BigEndian.PutUint16(r[8:], 0)
	binary.BigEndian.PutUint16(r[10:], 0)
	if end > 12 {
		r = append(r, q[12:end]...)
		binary.BigEndian.PutUint16(r[4:], 1)
	} else {
		binary.BigEndian.PutUint16(r[4:], 0)
	}
	return r
}

// questionEnd returns the offset after q's first question, or 0 when it
// is absent, compressed or truncated.
func questionEnd(q []byte) int {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) == 0 {
		return 0
	}
	off := 12
	for range 128 { // a name has at most 127 labels
		if off >= len(q) {
			return 0
		}
		l := int(q[off])
		if l == 0 {
			off++
			if off+4 > len(q) {
				return 0
			}
			return off + 4
		}
		if l&0xc0 != 0 {
			return 0
		}
		off += 1 + l
	}
	return 0
}
