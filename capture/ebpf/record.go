//go:build linux

package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/procfs"
)

// Record kinds; the values match enum kind in bpf/egress.bpf.c.
const (
	kindConnect     = 1
	kindRetransmit  = 2
	kindEstablished = 3
	kindReset       = 4
	kindError       = 5
	kindClose       = 6
	kindConnectFail = 7
	kindUDPConnect  = 8
	kindStack       = 9
)

const (
	afInet  = 2
	afInet6 = 10
)

// recordSize is the size of struct event in bpf/egress.bpf.c.
const recordSize = 96

// Sizes of struct stack_event: the event header, the byte count, the frames.
const (
	maxFrames       = 64
	stackRecordSize = recordSize + 16 + 8*maxFrames
)

// rawStack is a K_STACK record: the return addresses of the thread that
// made socket cookie, innermost first.
type rawStack struct {
	cookie uint64
	pid    uint32
	pcs    []uint64
	spWord uint64 // the word at the user stack pointer (see struct stack_event)
	err    int64  // bpf_get_stack's error (negative), 0 when pcs is valid
}

// recordKind returns the kind byte of a ring-buffer record (0 if too short).
func recordKind(raw []byte) uint8 {
	if len(raw) < recordSize {
		return 0
	}
	return raw[36]
}

// toStack decodes a K_STACK record (struct stack_event).
func toStack(raw []byte) (rawStack, error) {
	if len(raw) < stackRecordSize {
		return rawStack{}, fmt.Errorf("decode ring buffer stack record: %d bytes, want %d", len(raw), stackRecordSize)
	}
	r := decodeRecord(raw)
	le := binary.LittleEndian
	st := rawStack{cookie: r.Sk ^ r.Gen<<48, pid: r.Tgid, spWord: le.Uint64(raw[recordSize+8:])}
	size := int64(le.Uint64(raw[recordSize:]))
	if size < 0 {
		st.err = size
		return st, nil
	}
	n := int(min(size/8, maxFrames))
	st.pcs = make([]uint64, 0, n)
	for i := 0; i < n; i++ {
		pc := le.Uint64(raw[recordSize+16+8*i:])
		if pc == 0 {
			break
		}
		st.pcs = append(st.pcs, pc)
	}
	return st, nil
}

// toSock turns one ring-buffer record into the model: the only place where
// the kernel's layout meets event.Sock. monoOff converts the record's
// CLOCK_MONOTONIC time to Unix time.
//
// The cookie is the socket's kernel address xor its generation shifted into
// the top bits (kernel addresses share them), so a socket allocated at the
// address of a closed one gets a different cookie.
//
// A connect() that failed before any SYN (no route, a policy's EACCES)
// becomes a SockError with only Dst set: there was never a SYN_SENT socket.
func toSock(raw []byte, monoOff int64, procs *procCache) (*event.Sock, error) {
	if len(raw) < recordSize {
		return nil, fmt.Errorf("decode ring buffer record: %d bytes, want %d", len(raw), recordSize)
	}
	r := decodeRecord(raw)
	s := &event.Sock{
		Time:   int64(r.Ts) + monoOff,
		Cookie: r.Sk ^ r.Gen<<48,
		Proto:  event.ProtoTCP,
		Proc:   procs.get(r.Tgid, r.Tid, r.Comm),
	}
	switch r.Kind {
	case kindConnect:
		s.Kind = event.SockConnect
	case kindRetransmit:
		s.Kind = event.SockRetransmit
	case kindEstablished:
		s.Kind = event.SockEstablished
	case kindReset:
		s.Kind = event.SockReset
	case kindError, kindConnectFail:
		s.Kind = event.SockError
		s.Errno = int(r.Err)
		if r.Err <= 0 {
			return nil, fmt.Errorf("decode ring buffer record: error kind %d without errno (%d)", r.Kind, r.Err)
		}
	case kindClose:
		s.Kind = event.SockClose
	case kindUDPConnect:
		s.Kind = event.SockUDPConnect
		s.Proto = event.ProtoUDP
	default:
		return nil, fmt.Errorf("decode ring buffer record: unknown kind %d", r.Kind)
	}
	src, dst, err := addrs(r.Family, r.Saddr, r.Daddr)
	if err != nil {
		return nil, err
	}
	if r.Kind != kindConnectFail {
		s.Src = netip.AddrPortFrom(src, r.Sport)
	}
	s.Dst = netip.AddrPortFrom(dst, r.Dport)
	return s, nil
}

func addrs(family uint8, saddr, daddr [16]uint8) (src, dst netip.Addr, err error) {
	switch family {
	case afInet:
		return netip.AddrFrom4([4]byte(saddr[:4])), netip.AddrFrom4([4]byte(daddr[:4])), nil
	case afInet6:
		// A dual-stack socket talking to IPv4 shows v4-mapped addresses;
		// the packets on the wire are IPv4, so unmap to join with them.
		return netip.AddrFrom16(saddr).Unmap(), netip.AddrFrom16(daddr).Unmap(), nil
	}
	return netip.Addr{}, netip.Addr{}, errors.New("decode ring buffer record: unknown address family " + fmt.Sprint(family))
}

// decodeRecord reads struct event (bpf/egress.bpf.c) field by field: the
// layout is fixed and little-endian (bpfel), and reflection-based decoding
// cost more than the rest of the per-event work.
func decodeRecord(b []byte) egressEvent {
	le := binary.LittleEndian
	var r egressEvent
	r.Ts = le.Uint64(b[0:])
	r.Sk = le.Uint64(b[8:])
	r.Gen = le.Uint64(b[16:])
	r.Tgid = le.Uint32(b[24:])
	r.Tid = le.Uint32(b[28:])
	r.Err = int32(le.Uint32(b[32:]))
	r.Kind, r.Family, r.Oldstate, r.Newstate = b[36], b[37], b[38], b[39]
	r.Sport = le.Uint16(b[40:])
	r.Dport = le.Uint16(b[42:])
	copy(r.Saddr[:], b[44:60])
	copy(r.Daddr[:], b[60:76])
	for i := range r.Comm {
		r.Comm[i] = int8(b[76+i])
	}
	r.Pad = le.Uint32(b[92:])
	return r
}

// procCache shares one event.Process per (pid, comm), so a busy process
// does not cost a string per event. Bounded: it starts over when full.
// The comm is the thread-group leader's: a process is named as ps names
// it, whichever thread acted (Node's lookups run on libuv worker threads
// named apart from the process). The leader's is read from /proc once per
// (pid, thread comm); when that fails (the process is gone, or the test
// has no /proc for it) the thread's is kept. The parent's pid is read
// there too (/proc/TGID/stat).
type procCache struct {
	m    map[procKey]*event.Process
	proc string // "/proc"; "" reads no leader names
}

type procKey struct {
	pid  uint32
	comm [16]int8
}

func newProcCache() *procCache {
	return &procCache{m: make(map[procKey]*event.Process), proc: "/proc"}
}

func (c *procCache) get(pid, tid uint32, comm [16]int8) *event.Process {
	if c == nil {
		return &event.Process{PID: int(pid), Comm: cString(comm[:])}
	}
	k := procKey{pid, comm}
	if p, ok := c.m[k]; ok {
		return p
	}
	if len(c.m) >= 4096 {
		clear(c.m)
	}
	name := cString(comm[:])
	parent := 0
	if c.proc != "" {
		dir := c.proc + "/" + strconv.FormatUint(uint64(pid), 10)
		if tid != pid {
			if b, err := os.ReadFile(dir + "/comm"); err == nil && len(b) > 1 {
				name = strings.TrimSuffix(string(b), "\n")
			}
		}
		if b, err := os.ReadFile(dir + "/stat"); err == nil {
			parent, _ = procfs.ParsePPID(b)
		}
	}
	p := &event.Process{PID: int(pid), Comm: name, Parent: parent}
	c.m[k] = p
	return p
}

func cString(b []int8) string {
	u := make([]byte, len(b))
	for i, c := range b {
		u[i] = byte(c)
	}
	if i := bytes.IndexByte(u, 0); i >= 0 {
		u = u[:i]
	}
	return string(u)
}
