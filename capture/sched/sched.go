//go:build linux

package sched

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/egress-dev/egress/event"
)

// Filter modes; the values match MODE_* in bpf/sched.bpf.c.
const (
	modePIDs   uint32 = 0
	modeCgroup uint32 = 2
)

// Options says which processes to follow: exactly one of Tracked and
// CgroupID.
type Options struct {
	// Tracked is the connect tracer's map of watched tgids and threads
	// (capture/ebpf Tracer.TrackedMap): shared, so both see one tree.
	Tracked *ebpf.Map
	// CgroupID follows the processes of one cgroup v2, as egress run does.
	CgroupID uint64
}

// Tracer holds the scheduler programs, their links and the reader.
type Tracer struct {
	objs    schedObjects
	links   []link.Link
	rd      *ringbuf.Reader
	monoOff int64
	start   event.Activity // the state at attach
}

// Open loads and attaches the programs. Threads of the tree that run at
// Open (state R in /proc) are counted before the programs attach, so the
// first change is right even for a process that never sleeps.
func Open(opts Options) (*Tracer, error) {
	if (opts.Tracked == nil) == (opts.CgroupID == 0) {
		return nil, errors.New("sched options: set exactly one of Tracked and CgroupID")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	spec, err := loadSched()
	if err != nil {
		return nil, fmt.Errorf("read embedded eBPF object: %w", err)
	}
	mode := modePIDs
	var lo ebpf.CollectionOptions
	if opts.Tracked != nil {
		lo.MapReplacements = map[string]*ebpf.Map{"tracked_tgids": opts.Tracked}
	} else {
		mode = modeCgroup
	}
	if err := spec.Variables["cfg_mode"].Set(mode); err != nil {
		return nil, fmt.Errorf("set cfg_mode: %w", err)
	}
	if err := spec.Variables["cfg_cgroup_id"].Set(opts.CgroupID); err != nil {
		return nil, fmt.Errorf("set cfg_cgroup_id: %w", err)
	}
	t := &Tracer{monoOff: monoOffset()}
	if err := spec.LoadAndAssign(&t.objs, &lo); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load scheduler programs: rejected by the verifier: %w", err)
		}
		return nil, fmt.Errorf("load scheduler programs: %w", err)
	}
	n := uint64(0)
	if opts.Tracked != nil {
		n = t.seed(opts.Tracked)
	}
	if err := t.objs.Running.Put(uint32(0), n); err != nil {
		t.Close()
		return nil, fmt.Errorf("seed running count: %w", err)
	}
	for _, p := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_switch", t.objs.OnSchedSwitch},
		{"sched_wakeup", t.objs.OnSchedWakeup},
		{"sched_wakeup_new", t.objs.OnSchedWakeupNew},
		{"sched_process_fork", t.objs.OnSchedFork},
	} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: p.name, Program: p.prog})
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("attach raw tracepoint %s: %w", p.name, err)
		}
		t.links = append(t.links, l)
	}
	t.start = event.Activity{Time: time.Now().UnixNano(), Running: n > 0}
	if t.rd, err = ringbuf.NewReader(t.objs.SchedEvents); err != nil {
		t.Close()
		return nil, fmt.Errorf("open scheduler ring buffer: %w", err)
	}
	return t, nil
}

// seed marks the running threads of every tracked tgid, from /proc, and
// returns how many there are.
func (t *Tracer) seed(tracked *ebpf.Map) uint64 {
	var n uint64
	var key uint32
	var val uint8
	it := tracked.Iterate()
	for it.Next(&key, &val) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", key))
		for _, path := range tasks {
			if !runnable(path) {
				continue
			}
			tid, err := strconv.ParseUint(filepath.Base(filepath.Dir(path)), 10, 32)
			if err != nil {
				continue
			}
			if t.objs.Threads.Update(uint32(tid), uint32(1), ebpf.UpdateNoExist) == nil {
				n++
			}
		}
	}
	return n
}

// runnable reads a /proc stat file's state field: R is running or ready.
func runnable(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(line, ')')
	return i >= 0 && i+2 < len(line) && line[i+2] == 'R'
}

func monoOffset() int64 {
	var mono, real, mono2 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono2)
	return real.Nano() - (mono.Nano()+mono2.Nano())/2
}

// pollInterval bounds how long a record waits: the programs never wake
// the reader.
const pollInterval = 20 * time.Millisecond

// recordSize is the size of struct sched_event.
const recordSize = 16

// decode turns one record into the model.
func decode(raw []byte, monoOff int64) (event.Activity, error) {
	if len(raw) < recordSize {
		return event.Activity{}, fmt.Errorf("decode scheduler record: %d bytes, want %d", len(raw), recordSize)
	}
	le := binary.LittleEndian
	return event.Activity{Time: int64(le.Uint64(raw)) + monoOff, Running: le.Uint32(raw[8:]) != 0}, nil
}

// Run sends the state at attach, then every change, to sink until ctx is
// done; it returns ctx.Err(). A Tracer runs once.
func (t *Tracer) Run(ctx context.Context, sink func(event.Activity)) error {
	stop := context.AfterFunc(ctx, func() { t.rd.Close() })
	defer stop()
	sink(t.start)
	var rec ringbuf.Record
	for {
		t.rd.SetDeadline(time.Now().Add(pollInterval))
		if err := t.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read scheduler ring buffer: %w", err)
		}
		a, err := decode(rec.RawSample, t.monoOff)
		if err != nil {
			return err
		}
		sink(a)
	}
}

// Parent returns the parent of a watched process forked while attached
// (0 when unknown), even after either has exited.
func (t *Tracer) Parent(pid int) int {
	var p uint32
	if pid <= 0 || t.objs.Parents == nil || t.objs.Parents.Lookup(uint32(pid), &p) != nil {
		return 0
	}
	return int(p)
}

// Lost returns how many changes the kernel dropped (ring buffer full).
func (t *Tracer) Lost() uint64 {
	var perCPU []uint64
	if err := t.objs.SchedLost.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Close detaches the programs and frees the maps; safe to call twice.
func (t *Tracer) Close() error {
	var errs []error
	if t.rd != nil {
		errs = append(errs, t.rd.Close())
		t.rd = nil
	}
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	errs = append(errs, t.objs.Close())
	t.objs = schedObjects{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close scheduler tracer: %w", err)
	}
	return nil
}
