//go:build linux

package block

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Options configure the programs before they are loaded.
type Options struct {
	// Cgroup is the cgroup v2 directory to attach to.
	Cgroup string
	// Enforce refuses every destination not allowed by Allow (and not
	// loopback, when AllowLoopback). Without it the programs only steer DNS.
	Enforce       bool
	AllowLoopback bool
	// ProxyPort is the port of the DNS proxy on 127.0.0.1 (and [::1] when
	// Proxy6); 0 leaves DNS alone.
	ProxyPort uint16
	Proxy6    bool
	// CgroupID is Cgroup's id: TCP connects of other (child) cgroups are
	// reported by the hooks, since the tracer follows this cgroup only.
	CgroupID uint64
}

// Kinds of Blocked records.
const (
	// KindRefused: connect() or sendmsg() refused with EPERM.
	KindRefused uint8 = iota
	// KindCall: a call let through that the tracepoints do not see (UDP,
	// or TCP from a child cgroup), for the policy to judge.
	KindCall
	// KindPacket: a packet of a socket the sock_addr hooks do not cover
	// (ICMP, raw, other protocols), caught by the cgroup_skb catch-all;
	// Refused says whether it was dropped.
	KindPacket
	// KindSteered: a TCP connect to a DNS server (port 53) that the hooks
	// steered to the proxy; Dst is the server the app asked for.
	KindSteered
	// KindConn: a step of a child cgroup's TCP connection (ConnOp), by
	// socket Cookie: the tracepoints follow the run's own cgroup only.
	KindConn
)

// ConnOp values of KindConn records.
const (
	ConnSYN         uint8 = 1 // the first SYN is about to leave
	ConnEstablished uint8 = 2
	ConnRetransmit  uint8 = 3 // a SYN was sent again
	ConnClosed      uint8 = 4 // closed before it was established
)

// Blocked is one call the programs refused or reported. KindCall and
// KindPacket records come once per (process, destination, protocol): Seen
// counts the rest.
type Blocked struct {
	Time    int64 // Unix nanoseconds
	PID     int   // 0 when unknown (a packet of a socket made before the hooks)
	Comm    string
	UID     uint32
	Proto   uint8 // IP protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...
	Dst     netip.AddrPort
	Kind    uint8
	Refused bool
	SkType  uint8 // 1 stream, 2 datagram, 3 raw
	ConnOp  uint8 // KindConn: Conn*
	Cookie  uint64
}

// ProtoCount is what the catch-all saw of one IP protocol.
type ProtoCount struct {
	Proto            uint8
	Packets, Dropped uint64
}

// Blocker holds the loaded programs and their cgroup links. Close detaches
// them; the links die with the process too.
type Blocker struct {
	objs    blockObjects
	links   []link.Link
	rd      *ringbuf.Reader
	monoOff int64

	mu     sync.Mutex // guards closed
	closed bool
}

// Open loads the programs and attaches them to opts.Cgroup.
func Open(opts Options) (*Blocker, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit (needs CAP_SYS_RESOURCE or root): %w", err)
	}
	spec, err := loadBlock()
	if err != nil {
		return nil, fmt.Errorf("read embedded eBPF object: %w", err)
	}
	for name, v := range map[string]any{
		"cfg_enforce":        boolU32(opts.Enforce),
		"cfg_allow_loopback": boolU32(opts.AllowLoopback),
		"cfg_proxy_port":     opts.ProxyPort,
		"cfg_proxy6":         boolU32(opts.Proxy6),
		"cfg_cgroup_id":      opts.CgroupID,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	b := &Blocker{monoOff: monoOffset()}
	if err := spec.LoadAndAssign(&b.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load blocking programs: %+v", ve)
		}
		return nil, fmt.Errorf("load blocking programs: %w", err)
	}
	p := &b.objs.blockPrograms
	for _, h := range []struct {
		attach ebpf.AttachType
		prog   *ebpf.Program
	}{
		{ebpf.AttachCGroupInet4Connect, p.BlockConnect4},
		{ebpf.AttachCGroupInet6Connect, p.BlockConnect6},
		{ebpf.AttachCGroupUDP4Sendmsg, p.BlockSendmsg4},
		{ebpf.AttachCGroupUDP6Sendmsg, p.BlockSendmsg6},
		{ebpf.AttachCGroupUDP4Recvmsg, p.BlockRecvmsg4},
		{ebpf.AttachCGroupUDP6Recvmsg, p.BlockRecvmsg6},
		{ebpf.AttachCGroupInetSockCreate, p.BlockSockCreate},
		{ebpf.AttachCGroupInetEgress, p.BlockSkbEgress},
		{ebpf.AttachCGroupSockOps, p.BlockSockops},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: opts.Cgroup, Attach: h.attach, Program: h.prog})
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("attach %s to cgroup %s: %w", h.attach, opts.Cgroup, err)
		}
		b.links = append(b.links, l)
	}
	if b.rd, err = ringbuf.NewReader(b.objs.BlockedEvents); err != nil {
		b.Close()
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	return b, nil
}

func boolU32(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

func monoOffset() int64 {
	var mono, real, mono2 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono2)
	return real.Nano() - (mono.Nano()+mono2.Nano())/2
}

// Allow lets the cgroup reach prefix on port (0: any port) over proto (0:
// any, 6 TCP, 17 UDP). It returns once the kernel map holds the entry, so
// a caller that allows before it answers a lookup never races the connect.
func (b *Blocker) Allow(prefix netip.Prefix, port uint16, proto uint8) error {
	k := blockAllowKey{Port: port, Proto: proto}
	a := prefix.Addr()
	bits := prefix.Bits()
	if a.Is4() {
		bits += 96
	}
	k.Addr = a.As16()
	k.Prefixlen = uint32(32 + bits)
	if err := b.objs.Allow.Update(&k, uint8(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("allow %s port %d: %w", prefix, port, err)
	}
	return nil
}

// LinkFDs returns the file descriptors of the programs' cgroup links, for
// a supervisor that keeps them attached should egress die (a link lives
// while any descriptor of it is open, or its cgroup is gone).
func (b *Blocker) LinkFDs() []int {
	var fds []int
	for _, l := range b.links {
		if f, ok := l.(interface{ FD() int }); ok {
			fds = append(fds, f.FD())
		}
	}
	return fds
}

// Lost returns how many refusals were not reported (ring buffer full).
func (b *Blocker) Lost() uint64 {
	var perCPU []uint64
	if err := b.objs.BlockedLost.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Seen returns how many times the call of a KindCall or KindPacket record
// happened in all (at least 1), as the kernel counted it.
func (b *Blocker) Seen(bl Blocked) uint64 {
	// As16 maps IPv4 into IPv6, as the kernel keys it.
	k := blockSeenKey{Tgid: uint32(bl.PID), Port: bl.Dst.Port(), Proto: bl.Proto, Kind: bl.Kind, Addr: bl.Dst.Addr().As16()}
	var n uint64
	if err := b.objs.Seen.Lookup(&k, &n); err != nil || n == 0 {
		return 1
	}
	return n
}

// Protocols returns what the catch-all counted, by IP protocol, for the
// protocols it saw.
func (b *Blocker) Protocols() []ProtoCount {
	var out []ProtoCount
	for p := range uint32(256) {
		var c blockProtoCount
		if err := b.objs.ProtoStats.Lookup(p, &c); err == nil && c.Packets > 0 {
			out = append(out, ProtoCount{Proto: uint8(p), Packets: c.Packets, Dropped: c.Dropped})
		}
	}
	return out
}

// Run calls fn with each refused call until ctx is done, then returns
// ctx.Err(). fn runs on Run's goroutine.
func (b *Blocker) Run(ctx context.Context, fn func(Blocked)) error {
	// Closing is the only way to wake a blocked read; callers wait a moment
	// after the command exits so the last records are read first.
	stop := context.AfterFunc(ctx, func() { b.rd.Close() })
	defer stop()
	var rec ringbuf.Record
	for {
		if err := b.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read blocked calls: %w", err)
		}
		bl, err := decode(rec.RawSample, b.monoOff)
		if err != nil {
			return err
		}
		fn(bl)
	}
}

// decode turns one ring-buffer record into a Blocked: the only place the
// kernel's layout meets Go.
func decode(raw []byte, monoOff int64) (Blocked, error) {
	var r blockBlocked
	if _, err := binary.Decode(raw, binary.LittleEndian, &r); err != nil {
		return Blocked{}, fmt.Errorf("decode blocked record: %w", err)
	}
	addr := netip.AddrFrom16(r.Addr).Unmap()
	comm := make([]byte, 0, len(r.Comm))
	for _, c := range r.Comm {
		comm = append(comm, byte(c))
	}
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	return Blocked{
		Time:    int64(r.Ts) + monoOff,
		PID:     int(r.Tgid),
		Comm:    string(comm),
		UID:     r.Uid,
		Proto:   r.Proto,
		Dst:     netip.AddrPortFrom(addr, r.Port),
		Kind:    r.Kind,
		Refused: r.Refused != 0,
		SkType:  r.SkType,
		ConnOp:  r.ConnOp,
		Cookie:  r.Cookie,
	}, nil
}

// Close detaches the programs and frees the maps; it is safe to call twice.
func (b *Blocker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	if b.rd != nil {
		errs = append(errs, b.rd.Close())
	}
	for _, l := range b.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, b.objs.Close())
	return errors.Join(errs...)
}
