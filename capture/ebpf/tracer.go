//go:build linux

package ebpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/egress-dev/egress/event"
)

// Filter modes; the values match MODE_* in bpf/egress.bpf.c.
const (
	modePIDs   uint32 = 0
	modeAll    uint32 = 1
	modeCgroup uint32 = 2
)

// Options says which processes to watch. Exactly one of PIDs, CgroupID and
// AllProcesses must be set.
type Options struct {
	// PIDs are the process ids (tgids) to watch.
	PIDs []int
	// FollowChildren also watches the descendants of PIDs: those alive at
	// Open (read from /proc) and those forked later (followed in the kernel).
	FollowChildren bool
	// CgroupID watches the processes of one cgroup v2 (its inode number), as
	// egress run does for the command it starts.
	CgroupID uint64
	// AllProcesses watches every process on the host.
	AllProcesses bool
	// Stacks, when set, has the kernel take the user-space stack of the
	// thread at each TCP connect() (not a resolver's UDP connect: nothing
	// joins it to a lookup yet, and it would delay the record that names
	// the lookup's process), and
	// turns it into frames at once, while the process still lives: the
	// events then carry event.Sock.Stack.
	Stacks Symbolizer
	// RingBytes is the size of the ring buffer the kernel writes records
	// to (0: 4 MiB); a power of two, at least a page. A record that finds
	// it full is counted in Lost, never silently dropped: a small ring is
	// how the tests make the kernel lose records.
	RingBytes int
}

// Symbolizer turns the return addresses of a process's thread into frames
// (package symbolize). It is called from the goroutine running Run, as soon
// as the record is read.
//
// leafRet is the word at the thread's stack pointer on amd64 (0 elsewhere):
// the return address into the caller of a frameless leaf function such as
// libc's connect(), which a frame-pointer walk skips; the symbolizer checks
// that a call instruction precedes it before it adds the frame.
type Symbolizer interface {
	Symbolize(pid int, pcs []uint64, leafRet uint64) []event.Frame
}

// Sink receives the observations of a Tracer. Sock is called from the
// goroutine running Run; the event is the sink's to keep.
type Sink interface {
	Sock(*event.Sock)
}

// Tracer holds the loaded eBPF programs, their links and the ring-buffer
// reader. Close it to detach; the links are bpf_links owned by this process,
// so the kernel also detaches them when the process dies, even by SIGKILL.
type Tracer struct {
	opts    Options
	objs    egressObjects
	links   []link.Link
	rd      *ringbuf.Reader
	monoOff int64 // CLOCK_REALTIME - CLOCK_MONOTONIC, ns: turns bpf_ktime_get_ns into Unix time

	// onRecord, when set before Run, sees each raw record: the privileged
	// tests save real records as fuzz seeds with it.
	onRecord func([]byte)

	// stacks holds the stacks read but not yet joined to their socket's
	// first event, by cookie; owned by Run's goroutine. stacksDropped
	// counts those that never were (bounded table, bpf_get_stack errors).
	stacks        map[uint64][]event.Frame
	stacksDropped atomic.Uint64

	mu     sync.Mutex // guards closed
	closed bool
}

// maxPendingStacks bounds the stacks waiting for their socket's event: a
// stack whose socket is never announced (evicted from the kernel's table)
// would otherwise stay forever.
const maxPendingStacks = 4096

// StacksDropped returns how many stacks were taken but not attached to an
// event: the kernel could not unwind (bpf_get_stack failed) or the table
// of stacks waiting for their socket's event was full.
func (t *Tracer) StacksDropped() uint64 { return t.stacksDropped.Load() }

// stack handles a K_STACK record: the frames are symbolized now, while the
// process is in connect(), and kept until the socket's event comes.
func (t *Tracer) stack(raw []byte) error {
	st, err := toStack(raw)
	if err != nil {
		return err
	}
	if st.err != 0 || len(st.pcs) == 0 {
		t.stacksDropped.Add(1)
		return nil
	}
	if t.stacks == nil {
		t.stacks = make(map[uint64][]event.Frame)
	}
	if len(t.stacks) >= maxPendingStacks {
		t.stacksDropped.Add(uint64(len(t.stacks)))
		clear(t.stacks)
	}
	var leafRet uint64
	if runtime.GOARCH == "amd64" {
		leafRet = st.spWord
	}
	t.stacks[st.cookie] = t.opts.Stacks.Symbolize(int(st.pid), st.pcs, leafRet)
	return nil
}

// attachStack gives s the stack taken for its socket, if one waits.
func (t *Tracer) attachStack(s *event.Sock) {
	if len(t.stacks) == 0 {
		return
	}
	switch s.Kind {
	case event.SockConnect, event.SockError:
	default:
		return
	}
	if f, ok := t.stacks[s.Cookie]; ok {
		s.Stack = f
		delete(t.stacks, s.Cookie)
	}
}

// Tracepoints in attach order: process tracking first, so a fork racing
// with Open is followed once its parent is seeded.
var tracepoints = []struct {
	group, name string
	prog        func(*egressPrograms) *ebpf.Program
}{
	{"sched", "sched_process_fork", func(p *egressPrograms) *ebpf.Program { return p.OnFork }},
	{"sched", "sched_process_exec", func(p *egressPrograms) *ebpf.Program { return p.OnExec }},
	{"sched", "sched_process_exit", func(p *egressPrograms) *ebpf.Program { return p.OnExit }},
	{"syscalls", "sys_enter_connect", func(p *egressPrograms) *ebpf.Program { return p.OnConnectEnter }},
	{"syscalls", "sys_exit_connect", func(p *egressPrograms) *ebpf.Program { return p.OnConnectExit }},
	{"sock", "inet_sock_set_state", func(p *egressPrograms) *ebpf.Program { return p.OnSetState }},
	{"tcp", "tcp_retransmit_skb", func(p *egressPrograms) *ebpf.Program { return p.OnRetransmit }},
	{"tcp", "tcp_receive_reset", func(p *egressPrograms) *ebpf.Program { return p.OnReset }},
	{"sock", "inet_sk_error_report", func(p *egressPrograms) *ebpf.Program { return p.OnErrorReport }},
}

// Open loads the programs (CO-RE against the running kernel's BTF), attaches
// them and seeds the watched processes. An error names what the kernel or
// the caller's privileges lack.
func Open(opts Options) (*Tracer, error) {
	mode, err := opts.mode()
	if err != nil {
		return nil, err
	}
	if n := opts.RingBytes; n != 0 && (n < os.Getpagesize() || n&(n-1) != 0 || n > 1<<30) {
		return nil, fmt.Errorf("ring buffer size %d bytes: want a power of two from the page size (%d) to 1 GiB", n, os.Getpagesize())
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit (needs CAP_SYS_RESOURCE or root): %w", err)
	}
	if err := ensureTracefs(); err != nil {
		return nil, err
	}
	spec, err := loadEgress()
	if err != nil {
		return nil, fmt.Errorf("read embedded eBPF object: %w", err)
	}
	for name, v := range map[string]any{
		"cfg_mode":      mode,
		"cfg_follow":    boolU32(opts.FollowChildren),
		"cfg_cgroup_id": opts.CgroupID,
		"cfg_stacks":    boolU32(opts.Stacks != nil),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	if n := opts.RingBytes; n != 0 {
		spec.Maps["events"].MaxEntries = uint32(n)
	}
	t := &Tracer{opts: opts, monoOff: monoOffset()}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, loadError(err)
	}
	for _, tp := range tracepoints {
		l, err := link.Tracepoint(tp.group, tp.name, tp.prog(&t.objs.egressPrograms), nil)
		if err != nil {
			t.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("attach tracepoint %s:%s: this kernel does not have it: %w", tp.group, tp.name, err)
			}
			return nil, fmt.Errorf("attach tracepoint %s:%s: %w", tp.group, tp.name, err)
		}
		t.links = append(t.links, l)
	}
	for _, pid := range opts.PIDs {
		if err := t.AddPID(pid); err != nil {
			t.Close()
			return nil, err
		}
	}
	t.rd, err = ringbuf.NewReader(t.objs.Events)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	return t, nil
}

func (o Options) mode() (uint32, error) {
	n, mode := 0, modePIDs
	if len(o.PIDs) > 0 {
		n++
	}
	if o.CgroupID != 0 {
		n++
		mode = modeCgroup
	}
	if o.AllProcesses {
		n++
		mode = modeAll
	}
	if n != 1 {
		return 0, errors.New("ebpf options: set exactly one of PIDs, CgroupID and AllProcesses")
	}
	for _, pid := range o.PIDs {
		if pid <= 0 {
			return 0, fmt.Errorf("ebpf options: invalid pid %d", pid)
		}
	}
	return mode, nil
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// loadError says what the kernel refused: missing BTF, privileges, or the
// verifier's log.
func loadError(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("load eBPF programs: rejected by the verifier: %w", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("load eBPF programs: kernel lacks a needed feature (ring buffer needs Linux >= 5.8, atomics >= 5.12): %w", err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("load eBPF programs: not permitted (needs CAP_BPF and CAP_PERFMON, or root): %w", err)
	default:
		return fmt.Errorf("load eBPF programs (needs BTF at /sys/kernel/btf/vmlinux): %w", err)
	}
}

// ensureTracefs mounts tracefs when no mount exposes the tracepoint ids
// that link.Tracepoint looks up (minimal VMs and containers boot without it).
func ensureTracefs() error {
	for _, dir := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs at /sys/kernel/tracing (tracepoint ids are read there): %w", err)
	}
	return nil
}

func monoOffset() int64 {
	var mono, real unix.Timespec
	// Read realtime between two monotonic reads and take the midpoint, so
	// the offset's error is at most half the gap.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	var mono2 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono2)
	return real.Nano() - (mono.Nano()+mono2.Nano())/2
}

// Backend names the capture backend for the start-up banner.
func (t *Tracer) Backend() string {
	return fmt.Sprintf("ebpf tracepoints (ring buffer %d MiB)", t.objs.Events.MaxEntries()>>20)
}

// AddPID watches pid (a tgid) and, with FollowChildren, its descendants alive
// now. It is valid only in PIDs mode.
func (t *Tracer) AddPID(pid int) error {
	if len(t.opts.PIDs) == 0 {
		return errors.New("add pid: tracer does not filter by pid")
	}
	pids := []int{pid}
	if t.opts.FollowChildren {
		// The fork tracepoint is attached before this scan, so a child is
		// either seen here or added by the kernel at its fork.
		if err := t.objs.TrackedTgids.Put(uint32(pid), uint8(1)); err != nil {
			return fmt.Errorf("track pid %d: %w", pid, err)
		}
		d, err := descendants(pid)
		if err != nil {
			return fmt.Errorf("find descendants of pid %d: %w", pid, err)
		}
		pids = append(pids, d...)
	}
	for _, p := range pids {
		if err := t.objs.TrackedTgids.Put(uint32(p), uint8(1)); err != nil {
			return fmt.Errorf("track pid %d: %w", p, err)
		}
	}
	return nil
}

// TrackedMap is the kernel map of watched tgids (and threads) in PIDs mode:
// capture/sched shares it, so the scheduler view follows the same tree.
func (t *Tracer) TrackedMap() *ebpf.Map { return t.objs.TrackedTgids }

// Lost returns how many records the kernel dropped because the ring buffer
// was full.
func (t *Tracer) Lost() uint64 {
	var perCPU []uint64
	if err := t.objs.Lost.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Run delivers observations to sink until ctx is done, then returns
// ctx.Err(). It closes the ring-buffer reader on return, so a Tracer runs
// once.
// pollInterval bounds how long a record waits in the ring buffer when the
// programs did not wake the reader (they do so once 64 KiB pile up).
const pollInterval = 20 * time.Millisecond

func (t *Tracer) Run(ctx context.Context, sink Sink) error {
	stop := context.AfterFunc(ctx, func() { t.rd.Close() })
	defer stop()
	var rec ringbuf.Record
	procs := newProcCache()
	for {
		// The programs wake us only once a batch has piled up; the
		// deadline collects whatever came since, pollInterval at the latest.
		t.rd.SetDeadline(time.Now().Add(pollInterval))
		if err := t.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if t.onRecord != nil {
			t.onRecord(rec.RawSample)
		}
		if recordKind(rec.RawSample) == kindStack {
			if t.opts.Stacks == nil {
				return errors.New("decode ring buffer record: a stack record, but stacks are off")
			}
			if err := t.stack(rec.RawSample); err != nil {
				return err
			}
			continue
		}
		ev, err := toSock(rec.RawSample, t.monoOff, procs)
		if err != nil {
			// Our own kernel program wrote it: a mismatch is a build bug.
			return err
		}
		t.attachStack(ev)
		sink.Sock(ev)
	}
}

// Close detaches the programs and frees the maps. It is safe to call more
// than once and while Run is blocked (Run then returns an error).
func (t *Tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	if t.rd != nil {
		errs = append(errs, t.rd.Close())
	}
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, t.objs.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close ebpf tracer: %w", err)
	}
	return nil
}
