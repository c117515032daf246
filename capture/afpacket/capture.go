//go:build linux

package afpacket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/egress-dev/egress/capture/decode"
	"github.com/egress-dev/egress/event"
)

// LinkType is the link type of every Frame's Data (Linux cooked v2).
const LinkType = decode.LinkLinuxSLL2

// sllLen is the length of the Linux cooked v2 header.
const sllLen = 20

// Options configures a Capture.
type Options struct {
	// NetNS is the network namespace to capture in, as a file such as
	// /proc/1234/ns/net; empty means egress's own.
	NetNS string
	// SnapLen bounds the bytes kept of each packet (default 65535).
	SnapLen int
	// Owners, when set, attributes each DNS packet to its process.
	Owners *SocketOwners
}

// Frame is one captured packet, owned by whoever receives it.
type Frame struct {
	Time    int64  // Unix ns, from the kernel's receive timestamp
	Data    []byte // Linux cooked v2 header + network-layer packet
	WireLen int    // length of Data had nothing been cut by SnapLen
	// Packet is Data decoded, valid when Err is nil; Proc is set when
	// Owners attributed it. Packet.Payload points into Data.
	Packet event.Packet
	// Err is the decoding error: decode.ErrFragment for a fragment held
	// for reassembly (not a failure), or a truncated or undecodable packet.
	Err error
}

// Capture is an open AF_PACKET socket.
type Capture struct {
	opts Options
	f    *os.File
	rc   interface {
		Read(func(fd uintptr) bool) error
		Control(func(fd uintptr)) error
	}
	dec *decode.Decoder

	mu      sync.Mutex // guards stats and dropped
	stats   event.Stats
	dropped uint64
}

// Open opens the socket in opts.NetNS with the DNS filter attached before
// the socket is bound, so it never sees anything else.
func Open(opts Options) (*Capture, error) {
	if opts.SnapLen <= 0 {
		opts.SnapLen = 65535
	}
	fd, err := socketIn(opts.NetNS)
	if err != nil {
		return nil, err
	}
	if err := setup(fd, uint32(opts.SnapLen)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor becomes pollable in the runtime, so Close
	// from another goroutine ends a blocked read.
	f := os.NewFile(uintptr(fd), "afpacket")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("afpacket: raw conn: %w", err)
	}
	return &Capture{opts: opts, f: f, rc: rc, dec: decode.NewDecoder(decode.Options{})}, nil
}

// socketIn makes the socket inside the namespace at nsPath. setns changes
// the calling thread only, so it runs on a goroutine locked to its thread;
// the thread goes back to its own namespace afterwards, and if that fails
// it stays locked, so the runtime discards it when the goroutine ends and
// no other goroutine ever runs in the foreign namespace. (Discarding is not
// enough on its own: the main thread is wedged instead of discarded, and
// /proc/self/net follows the main thread.)
func socketIn(nsPath string) (int, error) {
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if nsPath == "" {
			defer runtime.UnlockOSThread()
			ch <- packetSocket()
			return
		}
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{-1, fmt.Errorf("afpacket: open own network namespace: %w", err)}
			return
		}
		defer unix.Close(self)
		ns, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{-1, fmt.Errorf("afpacket: open network namespace %s: %w", nsPath, err)}
			return
		}
		err = unix.Setns(ns, unix.CLONE_NEWNET)
		unix.Close(ns)
		if err != nil {
			ch <- result{-1, fmt.Errorf("afpacket: enter network namespace %s (needs CAP_SYS_ADMIN): %w", nsPath, err)}
			return
		}
		r := packetSocket()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- r
	}()
	r := <-ch
	return r.fd, r.err
}

type result struct {
	fd  int
	err error
}

// packetSocket opens the socket with protocol 0: it receives nothing until
// bind, after the filter is attached.
func packetSocket() result {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return result{-1, fmt.Errorf("afpacket: open AF_PACKET socket (needs CAP_NET_RAW): %w", err)}
	}
	return result{fd, nil}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func setup(fd int, snap uint32) error {
	raw, err := bpf.Assemble(filter(snap))
	if err != nil {
		return fmt.Errorf("afpacket: assemble filter: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("afpacket: attach filter: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("afpacket: enable SO_TIMESTAMPNS: %w", err)
	}
	// A larger buffer absorbs bursts while the reader is descheduled;
	// drops are counted either way.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return fmt.Errorf("afpacket: bind to all interfaces: %w", err)
	}
	// Reading the statistics resets them: start from zero.
	_, _ = unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	return nil
}

// Backend names the backend for the start-up banner.
func (c *Capture) Backend() string {
	ns := "egress's own network namespace"
	if c.opts.NetNS != "" {
		ns = c.opts.NetNS
	}
	return "af_packet dns+icmp (" + ns + ")"
}

// Run reads packets until ctx is done or Close is called, and hands each
// to deliver, from Run's goroutine. It returns ctx.Err() on cancellation.
// The socket is closed when Run returns.
func (c *Capture) Run(ctx context.Context, deliver func(*Frame)) error {
	stop := context.AfterFunc(ctx, func() { c.f.Close() })
	defer stop()
	defer c.Close()
	buf := make([]byte, c.opts.SnapLen)
	oob := make([]byte, unix.CmsgSpace(16)*2)
	for {
		var (
			n, oobn int
			from    unix.Sockaddr
			rerr    error
		)
		err := c.rc.Read(func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("afpacket: read: %w", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		if ll.Hatype == unix.ARPHRD_LOOPBACK && ll.Pkttype != unix.PACKET_OUTGOING {
			// Loopback shows every packet twice, sent and received: keep
			// the sent copy.
			continue
		}
		fr := c.frame(buf, n, oob[:oobn], ll)
		deliver(fr)
	}
}

func (c *Capture) frame(buf []byte, n int, oob []byte, ll *unix.SockaddrLinklayer) *Frame {
	capLen := min(n, len(buf))
	fr := &Frame{WireLen: sllLen + n, Data: make([]byte, sllLen+capLen)}
	d := fr.Data
	proto := uint16(0)
	if capLen > 0 {
		switch buf[0] >> 4 {
		case 4:
			proto = 0x0800
		case 6:
			proto = 0x86DD
		}
	}
	binary.BigEndian.PutUint16(d[0:], proto)
	binary.BigEndian.PutUint32(d[4:], uint32(ll.Ifindex))
	binary.BigEndian.PutUint16(d[8:], ll.Hatype)
	d[10] = ll.Pkttype
	d[11] = min(ll.Halen, 8)
	copy(d[12:20], ll.Addr[:d[11]])
	copy(d[sllLen:], buf[:capLen])
	fr.Time = timestamp(oob)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Packets++
	c.stats.Bytes += uint64(fr.WireLen)
	fr.Packet = event.Packet{Time: fr.Time, WireLen: fr.WireLen}
	if err := c.dec.Decode(LinkType, fr.Data, &fr.Packet); err != nil {
		fr.Err = err
		switch {
		case errors.Is(err, decode.ErrFragment):
		case errors.Is(err, decode.ErrTruncated):
			c.stats.Truncated++
		default:
			c.stats.Undecodable++
		}
		return fr
	}
	if c.opts.Owners != nil {
		fr.Packet.Proc = c.opts.Owners.Process(&fr.Packet)
	}
	return fr
}

// timestamp reads SCM_TIMESTAMPNS; without one (never on Linux with
// SO_TIMESTAMPNS set) it falls back to the time of reading.
func timestamp(oob []byte) int64 {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
				return sec*1e9 + nsec
			}
		}
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	return ts.Nano()
}

// Stats returns what was counted, with the kernel's drops (the socket
// buffer was full) in Lost. Safe to call at any time.
func (c *Capture) Stats() event.Stats {
	c.readDrops()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Lost = c.dropped
	return s
}

func (c *Capture) readDrops() {
	_ = c.rc.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			c.mu.Lock()
			c.dropped += uint64(st.Drops)
			c.mu.Unlock()
		}
	})
}

// Close closes the socket, ending Run. It is safe to call more than once.
func (c *Capture) Close() error {
	c.readDrops()
	if err := c.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("afpacket: close: %w", err)
	}
	return nil
}
