//go:build linux

package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/afpacket"
	"github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/capture/pcapng"
	"github.com/egress-dev/egress/capture/sched"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/cgrouprun"
	"github.com/egress-dev/egress/internal/enforce"
	"github.com/egress-dev/egress/internal/enforce/dnsproxy"
	"github.com/egress-dev/egress/pipeline"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/symbolize"
)

type runFlags struct {
	out       outputFlags
	mode      string
	block     bool
	resolvers []string
	report    string
	keepCaps  []string
	stacks    bool
	write     string
}

func newRunCmd(e *env) *cobra.Command {
	var fl runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command in its own cgroup and report (or block) the outbound calls it makes",
		Long: `run starts CMD in a cgroup v2 made for it, traces every process in that
cgroup with eBPF (connect() calls, SYN retransmits, outcomes), sees its DNS
lookups through a small DNS proxy the cgroup's port-53 traffic is steered to,
and reports when CMD exits. Needs root (or CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN).

With --rules, calls the policy does not allow are unexpected. In enforce mode
(the default) egress exits 3 when CMD succeeded but made unexpected calls; in
audit mode it only reports them. CMD's own exit status wins when CMD fails.

--block refuses unexpected destinations in the kernel: connect() and sendmsg()
fail with EPERM at once, and names the policy does not allow get REFUSED from
the proxy, so a blocked call fails fast instead of hanging (docs/block.md).

CMD runs without the capabilities a CI command does not need (NET_RAW,
NET_ADMIN, SYS_ADMIN, BPF, SYS_PTRACE...; --keep-caps keeps some), with
no_new_privs, in its own cgroup and pid namespaces; it dies with egress
(docs/block.md, "Threat model"). A lookup of a name no host entry allows is
an unexpected call.

Exit codes: CMD's own status when it failed (unchanged; 128+N for signal N);
127 CMD not found, 126 not executable; 3 unexpected calls (enforce mode);
4 --fail-on matched, or events were lost (enforce mode, or --fail-on lost);
130 egress was interrupted and stopped CMD; 125 egress itself failed (usage,
set-up); 0 otherwise (docs/cli.md).`,
		Example: `  egress run --rules egress.yaml -- npm test
  egress run --rules egress.yaml --block --format junit --report egress.xml -- ./login.sh
  egress run --mode audit --format json -- curl -s https://example.com/`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &exitError{code: ExitRunFailed, err: fmt.Errorf("no command: egress run [flags] -- CMD ARGS")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return runOwnErr(usageErr("put -- before the command: egress run [flags] -- CMD ARGS"))
			}
			return runOwnErr(runRun(cmd.Context(), e, args, &fl))
		},
	}
	cmd.Flags().SetInterspersed(false)
	// egress's own failures exit 125, apart from the codes CMD may return.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitRunFailed, err: fmt.Errorf("%w (egress run --help)", err)}
	})
	fl.out.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.mode, "mode", "enforce", "enforce: exit 3 when CMD made unexpected calls; audit: report them only")
	f.BoolVar(&fl.block, "block", false, "refuse calls the --rules policy does not allow, at connect() (needs --rules)")
	f.StringSliceVar(&fl.resolvers, "resolver", nil, "resolvers the DNS proxy forwards to (ADDR or ADDR:PORT; default: /etc/resolv.conf)")
	f.StringVar(&fl.report, "report", "", "write the report to this file instead of stdout (CMD's output stays on stdout)")
	f.StringSliceVar(&fl.keepCaps, "keep-caps", nil, "capabilities CMD keeps (e.g. NET_RAW,SYS_PTRACE); by default it runs without those a CI command does not need (docs/block.md)")
	f.BoolVar(&fl.stacks, "stacks", false, "record the user-space stack of each connect() and name the code that made each call (\"called from\"; docs/watch.md)")
	f.StringVarP(&fl.write, "write", "w", "", "write what was seen to this pcapng file (egress replay of it gives the same report)")
	return cmd
}

// check validates run's flags and takes --fail-on lost, run's own (the
// trace is incomplete), out of the output flags.
func (fl *runFlags) check() (failLost bool, err error) {
	failLost = slices.Contains(fl.out.failOn, "lost")
	fl.out.failOn = slices.DeleteFunc(fl.out.failOn, func(s string) bool { return s == "lost" })
	switch err := fl.out.validate(); {
	case err != nil:
		return false, err
	case fl.mode != "enforce" && fl.mode != "audit":
		return false, usageErr("unknown --mode %q: use enforce or audit", fl.mode)
	case fl.block && fl.out.rules == "" && fl.out.baseline == "":
		return false, usageErr("--block needs --rules FILE (the allowlist of what may be reached)")
	}
	return failLost, nil
}

func runRun(ctx context.Context, e *env, args []string, fl *runFlags) error {
	failLost, err := fl.check()
	if err != nil {
		return err
	}
	// Every call in the cgroup is the command's own.
	cfg := pipeline.Config{Live: true, Analyze: analyze.Config{LocalAny: true}, Source: "run " + strings.Join(args, " ")}
	out := e.stdout
	if fl.report != "" {
		file, err := os.Create(fl.report)
		if err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("write report: %w", err)}
		}
		defer file.Close()
		out = file
	}
	if err := fl.out.configure(&cfg, out); err != nil {
		return err
	}
	// Unexpected calls fail the check in enforce mode (exit 3), and with
	// --fail-on unexpected in audit mode too (exit 4, as --fail-on does).
	cfg.Judge = fl.out.criteria(fl.mode == "enforce" || fl.out.failsOnUnexpected())
	upstreams, err := resolvers(fl.resolvers)
	if err != nil {
		return usageErr("%v", err)
	}
	if len(upstreams) == 0 && fl.block {
		return usageErr("--block needs a resolver for the DNS proxy: none in /etc/resolv.conf, give --resolver ADDR")
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return commandErr(args[0], err)
	}
	keep, err := cgrouprun.ParseKeep(fl.keepCaps)
	if err != nil {
		return usageErr("--keep-caps: %v", err)
	}
	confine := cgrouprun.Confinement{Keep: keep}

	g, err := cgrouprun.New("egress-run")
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer func() {
		if err := g.Remove(); err != nil {
			fmt.Fprintf(e.stderr, "egress: %v\n", err)
		}
	}()

	// Every lookup the proxy relays gets a process: the kernel's view of
	// the cgroup's resolver sockets, else /proc among egress's descendants
	// (the command, behind cgrouprun's launcher, and everything it starts).
	resolvers := &resolverTable{owners: afpacket.NewSocketOwners(os.Getpid())}
	if len(upstreams) == 0 {
		fmt.Fprintln(e.stderr, "egress: no resolver in /etc/resolv.conf: DNS is not proxied, calls are named only by address")
	}
	guard, err := enforce.StartGuard(ctx, enforce.GuardOptions{Cgroup: g.Path, CgroupID: g.ID,
		Upstreams: upstreams, Policy: cfg.Policy, Block: fl.block, Owner: resolvers.process})
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer guard.Close()
	// A supervisor outside the cgroup keeps the programs attached and
	// removes the cgroup tree should egress die before it does.
	sup, err := g.Supervise(guard.Blocker.LinkFDs())
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer func() {
		if err := g.Remove(); err != nil {
			fmt.Fprintf(e.stderr, "egress: %v\n", err)
		}
		sup.Done()
	}()
	cfg.Refusals, cfg.Seen, cfg.Steering = true, guard.Seen, guard.Steering()

	tr, sv, err := runTracers(e, &cfg, fl, g.ID, resolvers, guard)
	if err != nil {
		return err
	}
	defer tr.Close()
	if sv != nil {
		defer sv.Close()
	}
	if fl.write != "" {
		w, err := pcapng.Create(fl.write)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		defer w.Abort()
		cfg.Tee = w
	}

	// CMD runs confined (internal/cgrouprun.Launch: no capabilities it does
	// not need, its own cgroup and pid namespaces, killed with egress).
	cfg.Analyze.From = time.Now().UnixNano()
	cmd, err := g.Launch(ctx, confine, args[0], args[1:]...)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	if fl.report == "" {
		// The report goes to stdout after CMD's output; keep them apart.
		cmd.Stdout = e.stderr
	}
	// SIGTERM or SIGINT to egress: pass SIGTERM on, give CMD 5 s to stop.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	// The window is CMD's run; what it left running dies with it, and the
	// pipeline's drain lets the kernel's last records (closes, refusals)
	// reach the ring buffers.
	var runErr error
	done := make(chan struct{})
	go func() {
		runErr = cgrouprun.Run(cmd)
		g.Kill()
		close(done)
	}()
	cfg.Window = done
	stopped := false
	cfg.Finish = func(r *report.Report) {
		stopped = ctx.Err() != nil
		runFinish(r, args[0], confine, stopped, guard.Proxy)
		enforce.Protocols(r, guard.Blocker.Protocols())
	}
	cfg.LookupsAreCalls = true
	res := pipeline.Run(ctx, cfg)
	// Clean up before the report is written: a closed stdout (| head -1)
	// must not leave the cgroup behind.
	if err := g.Remove(); err != nil {
		fmt.Fprintf(e.stderr, "egress: %v\n", err)
	}
	sup.Done()
	if n := tr.StacksDropped(); n > 0 {
		fmt.Fprintf(e.stderr, "egress: --stacks: %d stacks could not be taken or joined to their call\n", n)
	}
	cmdCode, err := commandStatus(args[0], runErr)
	if err != nil {
		return err
	}

	ciOutputs(e.stderr, res.Report, fl.report)
	err = fl.out.write(out, res.Report)
	if f, ok := out.(*os.File); ok && err == nil && fl.report != "" {
		err = f.Close()
	}
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	err = exit(e.stderr, res, ending{findings: ExitRunFindings, cmdName: args[0], cmdCode: cmdCode, enforce: fl.mode == "enforce",
		stopped: stopped, failLost: failLost || fl.mode == "enforce"})
	if err == nil {
		auditNote(e.stderr, res.Report)
	}
	return err
}

// runTracers opens the kernel's views of the cgroup: the socket tracer
// (its resolver sockets feed resolvers) and, where the kernel allows, the
// scheduler view for lost time; it adds them and the guard's sources to
// cfg. sv is nil without the scheduler view.
func runTracers(e *env, cfg *pipeline.Config, fl *runFlags, cgroupID uint64, resolvers *resolverTable, guard *enforce.Guard) (*ebpf.Tracer, *sched.Tracer, error) {
	opts := ebpf.Options{CgroupID: cgroupID}
	if fl.stacks {
		opts.Stacks = symbolize.New()
	}
	ring, err := ringBytes()
	if err != nil {
		return nil, nil, &exitError{code: ExitUsage, err: err}
	}
	opts.RingBytes = ring
	tr, err := ebpf.Open(opts)
	if err != nil {
		return nil, nil, &exitError{code: ExitUsage, err: err}
	}
	cfg.Sources = append([]capture.Source{resolverSource{tr.Source(), resolvers}}, guard.Sources()...)
	cfg.Backend = tr.Backend()
	// The scheduler view: how much of the run the failed calls cost.
	sv, svErr := sched.Open(sched.Options{CgroupID: cgroupID})
	if svErr != nil {
		fmt.Fprintf(e.stderr, "egress: no scheduler view, lost time is estimated: %v\n", svErr)
		sv = nil
	} else {
		cfg.Sources = append(cfg.Sources, sv.Source())
		cfg.Backend += ", scheduler view"
		// The parents of processes forked in the cgroup, for those /proc
		// no longer shows.
		cfg.ParentOf = sv.Parent
	}
	if guard.Proxy != nil {
		cfg.Backend += ", dns proxy"
	}
	cfg.Backend += ", cgroup hooks and catch-all"
	if fl.block {
		cfg.Backend += " (blocking)"
	}
	return tr, sv, nil
}

// commandStatus is the wrapped command's exit status as a shell gives it
// (128+N for a signal), or the error of a command that could not run.
func commandStatus(name string, runErr error) (int, error) {
	var ee *exec.ExitError
	switch {
	case errors.As(runErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	case runErr != nil:
		return 0, commandErr(name, runErr)
	}
	return 0, nil
}

// auditNote says on stderr which destinations audit mode let pass that
// enforce mode would fail on.
func auditNote(stderr io.Writer, r *report.Report) {
	if r.Check == nil || r.Check.Unexpected == 0 {
		return
	}
	var unexpected []*report.Destination
	for _, d := range report.Destinations(r) {
		if d.Unexpected {
			unexpected = append(unexpected, d)
		}
	}
	fmt.Fprintf(stderr, "egress: audit: %d unexpected destination(s) (--mode enforce fails on them): %s\n",
		len(unexpected), report.FailureSummary(unexpected, 5))
}

// resolverTable maps the local address of a connected DNS socket of the
// cgroup to its process (the kernel's view). The tracer's goroutine fills
// it, the DNS proxy reads it while the query's socket is still open, and
// falls back to /proc (owners) for sockets the kernel did not see connect:
// a resolver that uses sendto() on an unconnected socket, or a record still
// in the ring buffer. Bounded.
type resolverTable struct {
	mu     sync.Mutex
	m      map[netip.AddrPort]*event.Process
	owners *afpacket.SocketOwners // /proc lookups among egress's descendants
}

func (t *resolverTable) add(src netip.AddrPort, p *event.Process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= 4096 {
		t.m = make(map[netip.AddrPort]*event.Process)
	}
	t.m[src] = p
}

// process returns the process whose socket sent a query from client.
func (t *resolverTable) process(client netip.AddrPort, tcp bool) *event.Process {
	t.mu.Lock()
	p := t.m[client]
	t.mu.Unlock()
	if p != nil || t.owners == nil {
		return p
	}
	proto := event.ProtoUDP
	if tcp {
		proto = event.ProtoTCP
	}
	return t.owners.Process(&event.Packet{Proto: proto, Src: client.Addr(), SrcPort: client.Port(), DstPort: 53})
}

// resolverSource is the tracer's source, remembering the resolver sockets
// it reports in the table as they come (the pipeline sees them only after
// its reorder hold, when the proxy has long answered).
type resolverSource struct {
	capture.Source
	t *resolverTable
}

func (r resolverSource) Run(ctx context.Context, sink capture.Sink) error {
	return r.Source.Run(ctx, capture.SinkFunc(func(o event.Observation) {
		if s, ok := o.(*event.Sock); ok && s.Kind == event.SockUDPConnect {
			r.t.add(s.Src, s.Proc)
		}
		sink.Observe(o)
	}))
}

// runOwnErr maps egress's own usage and set-up failures to ExitRunFailed,
// so they cannot be taken for the wrapped command's status 2.
func runOwnErr(err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.code == ExitUsage && !ee.command {
		return &exitError{code: ExitRunFailed, err: ee.err}
	}
	return err
}

// commandErr is the error of a command that could not be started, with
// the shell's codes: 127 not found, 126 found but not executable.
func commandErr(name string, err error) error {
	code := ExitNotExecutable
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = ExitNotFound
	}
	return &exitError{code: code, err: fmt.Errorf("cannot run %s: %w", name, err)}
}

// runFinish adds to the report what only egress run knows: how the command
// ran, whether egress stopped it, the DNS proxy's counters, and a headline
// that says when the trace is incomplete.
func runFinish(r *report.Report, name string, confine cgrouprun.Confinement, stopped bool, proxy *dnsproxy.Proxy) {
	r.Hints = append(r.Hints, report.ConfinementHint(confine.Dropped(), confine.Keep))
	if stopped {
		r.Hints = append(r.Hints, report.StoppedHint(name))
	}
	if proxy != nil {
		// Queries the kernel dropped before the proxy read them, and TCP
		// connections it closed unread, are missing from the report.
		ps := proxy.Stats()
		r.Stats.EventsLost += ps.KernelDropped + ps.TCPRefused
		if ps.Overloaded+ps.KernelDropped+ps.TCPRefused > 0 {
			r.Hints = append(r.Hints, report.DNSProxyOverloadedHint(ps.Overloaded, ps.KernelDropped, ps.TCPRefused))
		}
	}
}

// resolvers returns the --resolver addresses, else the nameservers of
// /etc/resolv.conf, as ADDR:53 unless a port is given.
func resolvers(flag []string) ([]netip.AddrPort, error) {
	var list []string
	if len(flag) > 0 {
		list = flag
	} else {
		data, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return nil, nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "nameserver" {
				list = append(list, f[1])
			}
		}
	}
	var out []netip.AddrPort
	for _, s := range list {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, ap)
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("resolver %q is not an address or address:port", s)
		}
		out = append(out, netip.AddrPortFrom(a.WithZone(""), 53))
	}
	return out, nil
}
