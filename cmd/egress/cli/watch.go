//go:build linux

package cli

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture/afpacket"
	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/capture/pcapng"
	"github.com/egress-dev/egress/event"
)

type watchFlags struct {
	out      outputFlags
	pid      int
	duration time.Duration
	trigger  string
	grace    time.Duration
	write    string
}

func newWatchCmd(e *env) *cobra.Command {
	var fl watchFlags
	cmd := &cobra.Command{
		Use:   "watch --pid PID [--trigger CMD | --duration D]",
		Short: "Watch a running process's outbound calls live (eBPF) and report them like replay",
		Long: `watch follows a running process, its threads and its descendants (including
those forked during the window) in the kernel with eBPF tracepoints: every
connect(), SYN retransmit, RST, socket error and give-up, with the process that
made it, even when a firewall on the host drops the SYNs before any device sees
them. It captures the DNS traffic and ICMP errors of the process's network
namespace to name the destinations. The report is the same as replay's.

The window is the run of --trigger CMD (run with sh -c in egress's own
namespace, from its start to its end plus --grace), or --duration, or until
Ctrl-C / SIGTERM. Attaching neither restarts nor stops the process; every
program is detached when egress exits, however it exits.

Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_RAW, CAP_SYS_ADMIN) and Linux >= 5.8
with BTF; see docs/watch.md.`,
		Example: `  sudo egress watch --pid $(pgrep -o php-fpm) --trigger 'curl -s -d user=admin http://localhost/login'
  sudo egress watch --pid 1234 --duration 30s --format json --fail-on timeout
  sudo egress watch --pid 1234 --write login.pcapng   # Ctrl-C ends the window
  egress replay login.pcapng                          # the same report, later`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWatch(cmd.Context(), e, &fl)
		},
	}
	fl.out.register(cmd)
	f := cmd.Flags()
	f.IntVarP(&fl.pid, "pid", "p", 0, "process to watch, with its threads and descendants (required)")
	f.DurationVarP(&fl.duration, "duration", "d", 0, "window length (default: until Ctrl-C, or the end of --trigger)")
	f.StringVarP(&fl.trigger, "trigger", "t", "", "command run with sh -c in egress's namespace; the window is its run plus --grace")
	f.DurationVar(&fl.grace, "grace", time.Second, "with --trigger: how long to keep watching after the command ends")
	f.StringVarP(&fl.write, "write", "w", "", "write what was seen to this pcapng file (replay it for the same report)")
	return cmd
}

func (fl *watchFlags) validate() error {
	if err := fl.out.validate(); err != nil {
		return err
	}
	switch {
	case fl.pid <= 0:
		return usageErr("--pid is required: the process to watch")
	case fl.duration < 0 || fl.grace < 0:
		return usageErr("--duration and --grace cannot be negative")
	case fl.duration > 0 && fl.trigger != "":
		return usageErr("--duration and --trigger both set the window: use one")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(fl.pid)); err != nil {
		return usageErr("--pid %d: no such process", fl.pid)
	}
	return nil
}

// drainAfter is how long the sources are still read once the window has
// closed: events timestamped inside the window may still sit in the ring
// buffer or the socket.
const drainAfter = 200 * time.Millisecond

func runWatch(ctx context.Context, e *env, fl *watchFlags) error {
	if err := fl.validate(); err != nil {
		return err
	}
	// For developers: EGRESS_CPUPROFILE=file profiles the live pipeline.
	if path := os.Getenv("EGRESS_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return usageErr("EGRESS_CPUPROFILE: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return usageErr("EGRESS_CPUPROFILE: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	attachStart := time.Now()
	tr, err := ebpf.Open(ebpf.Options{PIDs: []int{fl.pid}, FollowChildren: true})
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("cannot watch in the kernel: %w", err)}
	}
	defer tr.Close()
	backend := tr.Backend()
	// DNS names are a complement: without them the calls are still seen.
	capt, capErr := afpacket.Open(afpacket.Options{
		NetNS:  fmt.Sprintf("/proc/%d/ns/net", fl.pid),
		Owners: afpacket.NewSocketOwners(fl.pid),
	})
	if capErr != nil {
		fmt.Fprintf(e.stderr, "egress: no DNS capture, destinations will be unnamed: %v\n", capErr)
	} else {
		defer capt.Close()
		backend += " + " + capt.Backend()
	}
	fmt.Fprintf(e.stderr, "egress: watching pid %d and its descendants with %s; attached in %v\n",
		fl.pid, backend, time.Since(attachStart).Round(time.Millisecond))

	var w *pcapng.Writer
	if fl.write != "" {
		if w, err = pcapng.Create(fl.write); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		defer w.Abort()
	}

	// The sources run until the window has closed and been drained, not
	// until ctx ends: Ctrl-C closes the window, then the report comes out.
	srcCtx, stopSources := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSources()
	socks := make(chan *event.Sock, 4096)
	frames := make(chan *afpacket.Frame, 1024)
	srcErrs := make(chan error, 2)
	nSources := 1
	go func() {
		srcErrs <- tr.Run(srcCtx, sockFunc(func(s *event.Sock) {
			select {
			case socks <- s:
			case <-srcCtx.Done():
			}
		}))
	}()
	if capt != nil {
		nSources++
		go func() {
			srcErrs <- capt.Run(srcCtx, func(f *afpacket.Frame) {
				select {
				case frames <- f:
				case <-srcCtx.Done():
				}
			})
		}()
	}

	lw := &liveWatch{w: w}
	from := time.Now().UnixNano()
	lw.an = analyze.New(analyze.Config{From: from})

	win, err := openWindow(ctx, e, fl)
	if err != nil {
		return err
	}
	closeWindow := win.closed

	var srcErr error
	to := int64(0)
	var drainEnd <-chan time.Time
	tick := time.NewTicker(reorderHold / 2)
	defer tick.Stop()
loop:
	for {
		select {
		case s := <-socks:
			lw.push(pending{t: s.Time, s: s})
		case f := <-frames:
			lw.push(pending{t: f.Time, f: f})
		case now := <-tick.C:
			lw.flush(now.UnixNano()-int64(reorderHold), to)
		case err := <-srcErrs:
			// A source ended before the window did: report, keep the other.
			nSources--
			if err != nil && !errors.Is(err, context.Canceled) && srcErr == nil {
				srcErr = err
			}
			if nSources == 0 && to == 0 {
				to = time.Now().UnixNano()
				break loop
			}
		case <-closeWindow:
			closeWindow = nil
			to = time.Now().UnixNano()
			drainEnd = time.After(drainAfter)
		case <-drainEnd:
			break loop
		}
	}
	stopSources()
	// What was already queued is delivered too, so the file holds it all.
	for done := false; !done; {
		select {
		case s := <-socks:
			lw.push(pending{t: s.Time, s: s})
		case f := <-frames:
			lw.push(pending{t: f.Time, f: f})
		default:
			done = true
		}
	}
	lw.flush(math.MaxInt64, to)
	trigErr := win.wait()

	// The analyzer ends its window at the last observation it saw; this
	// bare clock tick (no protocol: nothing but the time is read) puts it
	// at the window's end, as replay's --to does.
	lw.an.Packet(&event.Packet{Time: to})
	var lost uint64
	if capt != nil {
		st := capt.Stats()
		lw.an.SourceStats(st)
		lost += st.Lost
	}
	kernelLost := tr.Lost()
	lw.an.Lost(kernelLost)
	lost += kernelLost
	r := lw.an.Finish()
	r.Stats.OutsideWindow += lw.late
	r.Source = fmt.Sprintf("watch pid %d", fl.pid)
	r.Backend = backend
	if srcErr != nil {
		r.Errors = append(r.Errors, srcErr.Error())
	}
	if trigErr != nil {
		fmt.Fprintf(e.stderr, "egress: --trigger: %v\n", trigErr)
	}
	if w != nil {
		if lw.werr == nil {
			lw.werr = w.Close(comment.WatchInfo{From: from, To: to, Lost: lost})
		}
		if lw.werr != nil {
			r.Errors = append(r.Errors, lw.werr.Error())
		}
	}
	if err := fl.out.annotate(r); err != nil {
		return err
	}
	findings, err := fl.out.write(e.stdout, r)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if srcErr != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("capture failed: %w; the report covers what was seen before", srcErr)}
	}
	if lw.werr != nil {
		return &exitError{code: ExitUsage, err: lw.werr}
	}
	if len(findings) > 0 {
		return &exitError{code: ExitFindings, err: fmt.Errorf("--fail-on matched %d call(s): %s", len(findings), summarise(findings))}
	}
	return nil
}

// window is the span watch reports on: the run of --trigger plus --grace,
// --duration, or until ctx ends (Ctrl-C, SIGTERM).
type window struct {
	closed   chan struct{} // closed when the window ends
	trigDone chan struct{} // closed when the trigger has exited (at once without one)
	trigErr  error         // the trigger's exit error, valid after trigDone
}

// openWindow starts the window's clock, and the trigger if there is one.
func openWindow(ctx context.Context, e *env, fl *watchFlags) (*window, error) {
	w := &window{closed: make(chan struct{}), trigDone: make(chan struct{})}
	after := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		close(w.closed)
	}
	switch {
	case fl.trigger != "":
		cmd := exec.CommandContext(ctx, "sh", "-c", fl.trigger)
		cmd.Stdout, cmd.Stderr = e.stderr, e.stderr // stdout is the report's
		if err := cmd.Start(); err != nil {
			return nil, &exitError{code: ExitUsage, err: fmt.Errorf("starting --trigger: %w", err)}
		}
		go func() {
			w.trigErr = cmd.Wait()
			close(w.trigDone)
			after(fl.grace)
		}()
	case fl.duration > 0:
		close(w.trigDone)
		go after(fl.duration)
	default:
		close(w.trigDone)
		go func() { <-ctx.Done(); close(w.closed) }()
	}
	return w, nil
}

// wait returns the trigger's exit error once it has exited.
func (w *window) wait() error {
	<-w.trigDone
	return w.trigErr
}

// reorderHold is how long observations wait to be put in time order
// before they are analyzed: kernel socket events and captured packets come
// through different queues, and a DNS answer must reach the analyzer before
// the connect() it names, as it happened.
const reorderHold = 100 * time.Millisecond

// liveWatch feeds the analyzer and the file from one goroutine, in the same
// order (by time, within reorderHold), so a replay of the file sees what
// the analyzer saw.
type liveWatch struct {
	an   *analyze.Analyzer
	w    *pcapng.Writer
	werr error
	late uint64 // observations after the window's end: written, not analyzed

	queue pendingHeap
	seq   uint64

	// resolverSockets maps the local address of a process's connected DNS
	// socket to the process (from the kernel), bounded.
	resolverSockets map[netip.AddrPort]*event.Process
}

// pending is one observation waiting in the reorder buffer: s or f.
type pending struct {
	t   int64
	seq uint64 // arrival order, for equal times
	s   *event.Sock
	f   *afpacket.Frame
}

type pendingHeap []pending

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	return h[i].t < h[j].t || (h[i].t == h[j].t && h[i].seq < h[j].seq)
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (l *liveWatch) push(p pending) {
	l.seq++
	p.seq = l.seq
	heap.Push(&l.queue, p)
}

// flush analyzes, in time order, what is older than until.
func (l *liveWatch) flush(until, to int64) {
	for len(l.queue) > 0 && l.queue[0].t <= until {
		p := heap.Pop(&l.queue).(pending)
		if p.s != nil {
			l.sock(p.s, to)
		} else {
			l.frame(p.f, to)
		}
	}
}

func (l *liveWatch) sock(s *event.Sock, to int64) {
	if s.Kind == event.SockUDPConnect {
		// Not a call: it says whose DNS queries leave from that address.
		if len(l.resolverSockets) >= 4096 {
			clear(l.resolverSockets)
		}
		if l.resolverSockets == nil {
			l.resolverSockets = make(map[netip.AddrPort]*event.Process)
		}
		l.resolverSockets[s.Src] = s.Proc
		return
	}
	if s.Proc != nil {
		// As the file can hold it, so live and replay agree.
		s.Proc.Comm = comment.SafeComm(s.Proc.Comm)
	}
	l.write(func() error { return l.w.WriteSock(s) })
	if to != 0 && s.Time > to {
		l.late++
		return
	}
	l.an.Sock(s)
}

func (l *liveWatch) frame(f *afpacket.Frame, to int64) {
	var proc *event.Process
	if f.Err == nil {
		if f.Packet.Proc == nil && f.Packet.Proto == event.ProtoUDP && f.Packet.DstPort == 53 {
			// The kernel saw which process connected this resolver socket
			// (the socket may be gone before /proc could say).
			f.Packet.Proc = l.resolverSockets[netip.AddrPortFrom(f.Packet.Src, f.Packet.SrcPort)]
		}
		proc = f.Packet.Proc
	}
	l.write(func() error { return l.w.WriteFrame(f.Time, f.Data, f.WireLen, proc) })
	if f.Err != nil {
		return // counted by the capture's stats
	}
	if to != 0 && f.Time > to {
		l.late++
		return
	}
	l.an.Packet(&f.Packet)
}

func (l *liveWatch) write(fn func() error) {
	if l.w == nil || l.werr != nil {
		return
	}
	l.werr = fn()
}

type sockFunc func(*event.Sock)

func (f sockFunc) Sock(s *event.Sock) { f(s) }
