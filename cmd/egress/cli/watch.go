//go:build linux

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/afpacket"
	"github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/capture/pcapng"
	"github.com/egress-dev/egress/capture/sched"
	"github.com/egress-dev/egress/containers"
	"github.com/egress-dev/egress/pipeline"
	"github.com/egress-dev/egress/symbolize"
)

type watchFlags struct {
	out       outputFlags
	pid       int
	container string
	duration  time.Duration
	trigger   string
	grace     time.Duration
	write     string
	stacks    bool
}

func newWatchCmd(e *env) *cobra.Command {
	var fl watchFlags
	cmd := &cobra.Command{
		Use:   "watch --pid PID | --container NAME [--trigger CMD | --duration D]",
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
	f.IntVarP(&fl.pid, "pid", "p", 0, "process to watch, with its threads and descendants (or --container)")
	f.StringVar(&fl.container, "container", "", "watch the processes of this container (name, ID or ID prefix of 12+ digits; Docker, Podman, containerd, CRI-O) and their descendants")
	f.DurationVarP(&fl.duration, "duration", "d", 0, "window length (default: until Ctrl-C, or the end of --trigger)")
	f.StringVarP(&fl.trigger, "trigger", "t", "", "command run with sh -c in egress's namespace; the window is its run plus --grace")
	f.DurationVar(&fl.grace, "grace", time.Second, "with --trigger: how long to keep watching after the command ends")
	f.StringVarP(&fl.write, "write", "w", "", "write what was seen to this pcapng file (replay it for the same report)")
	f.BoolVar(&fl.stacks, "stacks", false, "record the user-space stack of each connect() and name the code that made each call (\"called from\"; docs/watch.md)")
	return cmd
}

func (fl *watchFlags) validate() error {
	if err := fl.out.validate(); err != nil {
		return err
	}
	switch {
	case fl.pid > 0 && fl.container != "":
		return usageErr("--pid and --container both name what to watch: use one")
	case fl.pid <= 0 && fl.container == "":
		return usageErr("--pid or --container is required: what to watch")
	case fl.duration < 0 || fl.grace < 0:
		return usageErr("--duration and --grace cannot be negative")
	case fl.duration > 0 && fl.trigger != "":
		return usageErr("--duration and --trigger both set the window: use one")
	}
	if fl.container != "" {
		return nil
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(fl.pid)); err != nil {
		return usageErr("--pid %d: no such process", fl.pid)
	}
	return nil
}

// containerPIDs finds the processes of a container in /proc.
func containerPIDs(proc, name string) ([]int, containers.Info, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, containers.Info{}, err
	}
	res := containers.NewResolver(proc, "")
	var pids []int
	var found containers.Info
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if info := res.ForPID(pid); info.Match(name) {
			pids, found = append(pids, pid), info
		}
	}
	// The container's first process (its init, the others' ancestor) first:
	// DNS sockets are looked for under it.
	slices.Sort(pids)
	if len(pids) == 0 {
		return nil, found, usageErr("--container %s: no running process of such a container (by name, ID or ID prefix of 12+ digits)", name)
	}
	return pids, found, nil
}

func runWatch(ctx context.Context, e *env, fl *watchFlags) error {
	if err := fl.validate(); err != nil {
		return err
	}
	pids, what := []int{fl.pid}, fmt.Sprintf("pid %d", fl.pid)
	if fl.container != "" {
		var info containers.Info
		var err error
		if pids, info, err = containerPIDs("/proc", fl.container); err != nil {
			return err
		}
		what = fmt.Sprintf("container %s (%s, %d processes)", fl.container, info.ID[:12], len(pids))
	}
	cfg := pipeline.Config{Live: true, EndAtClose: true, Source: "watch " + what}
	if err := fl.out.configure(&cfg, e.stdout); err != nil {
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
	opts := ebpf.Options{PIDs: pids, FollowChildren: true}
	if fl.stacks {
		opts.Stacks = symbolize.New()
	}
	ring, err := ringBytes()
	if err != nil {
		return usageErr("%v", err)
	}
	opts.RingBytes = ring
	tr, err := ebpf.Open(opts)
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("cannot watch in the kernel: %w", err)}
	}
	defer tr.Close()
	cfg.Sources, cfg.Backend = []capture.Source{tr.Source()}, tr.Backend()
	// The scheduler view says how much of the window was lost; without
	// it lost_ms falls back to the capture's estimate.
	// EGRESS_SCHED=off (for benchmarks) leaves it out.
	var sv *sched.Tracer
	svErr := errors.New("EGRESS_SCHED=off")
	if os.Getenv("EGRESS_SCHED") != "off" {
		sv, svErr = sched.Open(sched.Options{Tracked: tr.TrackedMap()})
	}
	if svErr != nil {
		fmt.Fprintf(e.stderr, "egress: no scheduler view, lost time is estimated: %v\n", svErr)
	} else {
		defer sv.Close()
		cfg.Sources = append(cfg.Sources, sv.Source())
		cfg.Backend += " + scheduler view"
		// The parents of processes forked while watched, for those /proc
		// no longer shows: a short-lived resolver's tree.
		cfg.ParentOf = sv.Parent
	}
	// DNS names are a complement: without them the calls are still seen.
	capt, capErr := afpacket.Open(afpacket.Options{
		NetNS:  fmt.Sprintf("/proc/%d/ns/net", pids[0]),
		Owners: afpacket.NewSocketOwners(pids[0]),
	})
	if capErr != nil {
		fmt.Fprintf(e.stderr, "egress: no DNS capture, destinations will be unnamed: %v\n", capErr)
	} else {
		defer capt.Close()
		cfg.Sources = append(cfg.Sources, capt.Source())
		cfg.Backend += " + " + capt.Backend()
	}
	fmt.Fprintf(e.stderr, "egress: watching %s and its descendants with %s; attached in %v\n",
		what, cfg.Backend, time.Since(attachStart).Round(time.Millisecond))

	if fl.write != "" {
		w, err := pcapng.Create(fl.write)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		defer w.Abort()
		cfg.Tee = w
	}
	cfg.Analyze.From = time.Now().UnixNano()
	win, err := openWindow(ctx, e, fl)
	if err != nil {
		return err
	}
	cfg.Window = win.closed
	res := pipeline.Run(ctx, cfg)
	if n := tr.StacksDropped(); n > 0 {
		fmt.Fprintf(e.stderr, "egress: --stacks: %d stacks could not be taken or joined to their call\n", n)
	}
	if trigErr := win.wait(); trigErr != nil {
		fmt.Fprintf(e.stderr, "egress: --trigger: %v\n", trigErr)
	}
	if err := fl.out.write(e.stdout, res.Report); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	ciOutputs(e.stderr, res.Report, "")
	return exit(e.stderr, res, ending{sourceFailed: func(err error) error {
		return fmt.Errorf("capture failed: %w; the report covers what was seen before", err)
	}})
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

// ringBytes reads EGRESS_RING_KIB, the size in KiB of the ring buffer the
// kernel writes socket events to (unset: the tracer's 4 MiB). It is for
// tests and tuning: a small ring makes a burst of connects lose events,
// which the report must then count and the headline call INCOMPLETE.
func ringBytes() (int, error) {
	v := os.Getenv("EGRESS_RING_KIB")
	if v == "" {
		return 0, nil
	}
	kib, err := strconv.Atoi(v)
	if err != nil || kib <= 0 {
		return 0, fmt.Errorf("EGRESS_RING_KIB=%q: want a size in KiB, a power of two of at least the page size", v)
	}
	return kib << 10, nil
}
