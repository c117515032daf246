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
	"github.com/egress-dev/egress/capture/afpacket"
	"github.com/egress-dev/egress/capture/block"
	"github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/capture/sched"
	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/cgrouprun"
	"github.com/egress-dev/egress/internal/dnsproxy"
	"github.com/egress-dev/egress/internal/enforce"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
	"github.com/egress-dev/egress/symbolize"
)

// ExitUnexpected is egress run's exit code when the command succeeded but
// made calls the policy does not allow (in enforce mode). Documented in
// docs/cli.md with the others.
const ExitUnexpected = 3

type runFlags struct {
	out       outputFlags
	mode      string
	block     bool
	resolvers []string
	report    string
	keepCaps  []string
	stacks    bool
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
	// egress's own failures exit 125, apart from the codes CMD may return.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitRunFailed, err: fmt.Errorf("%w (egress run --help)", err)}
	})
	cmd.Flags().SetInterspersed(false)
	fl.out.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.mode, "mode", "enforce", "enforce: exit 3 when CMD made unexpected calls; audit: report them only")
	f.BoolVar(&fl.block, "block", false, "refuse calls the --rules policy does not allow, at connect() (needs --rules)")
	f.StringSliceVar(&fl.resolvers, "resolver", nil, "resolvers the DNS proxy forwards to (ADDR or ADDR:PORT; default: /etc/resolv.conf)")
	f.StringVar(&fl.report, "report", "", "write the report to this file instead of stdout (CMD's output stays on stdout)")
	f.StringSliceVar(&fl.keepCaps, "keep-caps", nil, "capabilities CMD keeps (e.g. NET_RAW,SYS_PTRACE); by default it runs without those a CI command does not need (docs/block.md)")
	f.BoolVar(&fl.stacks, "stacks", false, "record the user-space stack of each connect() and name the code that made each call (\"called from\"; docs/watch.md)")
	return cmd
}

// runState is what the event goroutine owns: the analyzer and what the
// cgroup programs refused or reported.
type runState struct {
	an      *analyze.Analyzer
	blocked enforce.Tally
	// resolvers names the process behind each query the proxy relays.
	resolvers *resolverTable
	// parentOf gives the parent of a process forked in the cgroup (the
	// scheduler view's map), when /proc no longer could.
	parentOf func(int) int
}

// resolverTable maps the local address of a connected DNS socket of the
// cgroup to its process (the kernel's view). The event goroutine fills it,
// the proxy reads it while the query's socket is still open, and falls
// back to /proc (owners) for sockets the kernel did not see connect: a
// resolver that uses sendto() on an unconnected socket, or a record still
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

// setRoot makes /proc lookups search pid and its descendants.
func (t *resolverTable) setRoot(pid int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.owners = afpacket.NewSocketOwners(pid)
}

// process returns the process whose socket sent a query from client.
func (t *resolverTable) process(client netip.AddrPort, tcp bool) *event.Process {
	t.mu.Lock()
	p, owners := t.m[client], t.owners
	t.mu.Unlock()
	if p != nil || owners == nil {
		return p
	}
	proto := event.ProtoUDP
	if tcp {
		proto = event.ProtoTCP
	}
	return owners.Process(&event.Packet{Proto: proto, Src: client.Addr(), SrcPort: client.Port(), DstPort: 53})
}

// sock takes one kernel event: resolver sockets are remembered, the rest
// goes to the analyzer.
func (s *runState) sock(e *event.Sock) {
	if e.Proc != nil && e.Proc.Parent == 0 && s.parentOf != nil {
		e.Proc.Parent = s.parentOf(e.Proc.PID)
	}
	if e.Kind == event.SockUDPConnect {
		s.resolvers.add(e.Src, e.Proc)
		return
	}
	s.an.Sock(e)
}

func runRun(ctx context.Context, e *env, args []string, fl *runFlags) error {
	// --fail-on lost is run's own: the trace is incomplete.
	failLost := slices.Contains(fl.out.failOn, "lost")
	fl.out.failOn = slices.DeleteFunc(fl.out.failOn, func(s string) bool { return s == "lost" })
	if err := fl.out.validate(); err != nil {
		return err
	}
	if fl.mode != "enforce" && fl.mode != "audit" {
		return usageErr("unknown --mode %q: use enforce or audit", fl.mode)
	}
	if fl.block && fl.out.rules == "" && fl.out.baseline == "" {
		return usageErr("--block needs --rules FILE (the allowlist of what may be reached)")
	}
	// The policy with the --baseline's destinations: what --block lets
	// through is what the report expects.
	pol, err := fl.out.policy()
	if err != nil {
		return err
	}
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

	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	var bg sync.WaitGroup
	evs := make(chan func(*runState), 4096)
	st := &runState{resolvers: &resolverTable{}}
	// Sockets the kernel did not see connect are looked up in /proc among
	// egress's descendants: the command (behind cgrouprun's launcher) and
	// everything it starts.
	st.resolvers.setRoot(os.Getpid())

	// Names the proxy answered, for refused calls to their addresses.
	var namesMu sync.Mutex
	names := map[netip.Addr]string{}
	refused := map[string]bool{} // names the proxy refused

	var blocker *block.Blocker
	var proxy *dnsproxy.Proxy
	var dp *dnsPolicy
	if len(upstreams) > 0 {
		dp = &dnsPolicy{pol: pol, enforce: fl.block}
		proxy, err = dnsproxy.Listen(dnsproxy.Config{Upstreams: upstreams, Policy: dp, Observe: func(x dnsproxy.Exchange) {
			if x.Refused {
				var m dnsmsg.Msg
				if m.Unpack(x.Query); m.QuestionOK() {
					namesMu.Lock()
					if len(refused) < 1<<16 {
						refused[strings.TrimSuffix(string(m.QName), ".")] = true
					}
					namesMu.Unlock()
				}
			}
			// Observe runs before the reply is sent: the client's socket
			// is still open, so /proc can still say whose it is.
			proc := st.resolvers.process(x.Client, x.TCP)
			evs <- func(s *runState) { feedDNS(s.an, x, proc) }
		}})
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		bg.Go(func() { proxy.Serve(bgCtx) })
	} else {
		fmt.Fprintln(e.stderr, "egress: no resolver in /etc/resolv.conf: DNS is not proxied, calls are named only by address")
	}
	// The cgroup programs: DNS steering, --block's refusals, and the calls
	// the tracepoints do not see (UDP, child cgroups, ICMP and raw
	// sockets), with or without --block.
	loopback := true
	if pol != nil {
		loopback, _ = pol.Defaults()
	}
	bopts := block.Options{Cgroup: g.Path, CgroupID: g.ID, Enforce: fl.block, AllowLoopback: loopback}
	if proxy != nil {
		bopts.ProxyPort, bopts.Proxy6 = proxy.Port(), proxy.IPv6()
	}
	blocker, err = block.Open(bopts)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer blocker.Close()
	if fl.block {
		for _, gr := range pol.AddrGrants() {
			if err := allowGrant(blocker, gr.Prefix, gr); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
		}
	}
	if dp != nil {
		dp.blocker = blocker
		dp.names = func(name string, addrs []netip.Addr) {
			namesMu.Lock()
			defer namesMu.Unlock()
			for _, a := range addrs {
				if len(names) < 1<<16 {
					names[a.Unmap()] = name
				}
			}
		}
	}
	// A supervisor outside the cgroup keeps the programs attached and
	// removes the cgroup tree should egress die before it does.
	sup, err := g.Supervise(blocker.LinkFDs())
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer func() {
		if err := g.Remove(); err != nil {
			fmt.Fprintf(e.stderr, "egress: %v\n", err)
		}
		sup.Done()
	}()
	bg.Go(func() {
		blocker.Run(bgCtx, func(b block.Blocked) {
			evs <- func(s *runState) { s.blocked.Add(b) }
		})
	})

	opts := ebpf.Options{CgroupID: g.ID}
	if fl.stacks {
		opts.Stacks = symbolize.New()
	}
	tr, err := ebpf.Open(opts)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer tr.Close()
	bg.Go(func() {
		tr.Run(bgCtx, sockSink(func(s *event.Sock) { evs <- func(st *runState) { st.sock(s) } }))
	})
	// The scheduler view: how much of the run the failed calls cost.
	sv, svErr := sched.Open(sched.Options{CgroupID: g.ID})
	if svErr != nil {
		fmt.Fprintf(e.stderr, "egress: no scheduler view, lost time is estimated: %v\n", svErr)
	} else {
		defer sv.Close()
		st.parentOf = sv.Parent
		bg.Go(func() {
			sv.Run(bgCtx, func(a event.Activity) { evs <- func(st *runState) { st.an.Activity(&a) } })
		})
	}

	start := time.Now()
	st.an = analyze.New(analyze.Config{LocalAny: true, From: start.UnixNano(), AppFrames: fl.out.appFramesRe()})
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for f := range evs {
			f(st)
		}
	}()

	// CMD runs confined (internal/cgrouprun.Launch: no capabilities it does
	// not need, its own cgroup and pid namespaces, killed with egress).
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
	runErr := cgrouprun.Run(cmd)
	stopped := ctx.Err() != nil
	cmdCode := 0
	var ee *exec.ExitError
	switch {
	case errors.As(runErr, &ee):
		cmdCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			cmdCode = 128 + int(ws.Signal())
		}
	case runErr != nil:
		stopBg()
		bg.Wait()
		close(evs)
		<-consumed
		return commandErr(args[0], runErr)
	}
	// What CMD left running dies with it; then let the kernel's last
	// records (closes, refusals) reach the ring buffers before stopping.
	g.Kill()
	time.Sleep(200 * time.Millisecond)
	stopBg()
	bg.Wait()
	close(evs)
	<-consumed
	// Clean up before the report is written: a closed stdout (| head -1)
	// must not leave the cgroup behind.
	if err := g.Remove(); err != nil {
		fmt.Fprintf(e.stderr, "egress: %v\n", err)
	}
	sup.Done()

	if lost := tr.Lost(); lost > 0 {
		st.an.Lost(lost)
	}
	if n := tr.StacksDropped(); n > 0 {
		fmt.Fprintf(e.stderr, "egress: --stacks: %d stacks could not be taken or joined to their call\n", n)
	}
	r := st.an.Finish()
	r.Source = "run " + strings.Join(args, " ")
	r.Hints = append(r.Hints, confinementHint(confine))
	if stopped {
		r.Hints = append(r.Hints, report.Hint{Kind: "stopped", Subject: args[0],
			Text: "egress was interrupted (SIGINT or SIGTERM) and passed SIGTERM on: egress stopped the command, the report covers the run until then"})
	}
	r.Backend = tr.Backend()
	if sv != nil {
		r.Backend += ", scheduler view"
		r.Stats.EventsLost += sv.Lost()
	}
	if proxy != nil {
		r.Backend += ", dns proxy"
	}
	r.Backend += ", cgroup hooks and catch-all"
	if fl.block {
		r.Backend += " (blocking)"
	}
	if lost := blocker.Lost(); lost > 0 {
		r.Stats.EventsLost += lost
	}
	if proxy != nil {
		// Queries the kernel dropped before the proxy read them, and TCP
		// connections it closed unread, are missing from the report.
		ps := proxy.Stats()
		r.Stats.EventsLost += ps.KernelDropped + ps.TCPRefused
		if ps.Overloaded+ps.KernelDropped+ps.TCPRefused > 0 {
			r.Hints = append(r.Hints, report.Hint{Kind: "dns-proxy", Subject: "overloaded",
				Text: fmt.Sprintf("%d queries answered SERVFAIL without forwarding (too many in flight), %d dropped by the kernel (socket buffer full), %d TCP connections closed unread",
					ps.Overloaded, ps.KernelDropped, ps.TCPRefused)})
		}
	}
	if lost := r.Stats.EventsLost; lost > 0 {
		r.Headline = fmt.Sprintf("INCOMPLETE: %d kernel event(s) lost, calls may be missing; %s", lost, r.Headline)
	}
	if proxy != nil {
		st.blocked.Steering = enforce.Steering{Port: proxy.Port()}
	}
	namesMu.Lock()
	st.blocked.Merge(r, names, refused, blocker.Seen)
	namesMu.Unlock()
	enforce.Protocols(r, blocker.Protocols())
	if err := fl.out.annotate(r); err != nil {
		return err
	}
	if pol != nil {
		enforce.JudgeLookups(r, func(names ...string) bool { return hasHostGrant(pol, names...) })
	}
	// Unexpected calls fail the check in enforce mode (exit 3), and with
	// --fail-on unexpected in audit mode too (exit 4, as --fail-on does).
	failing := fl.out.judge(r, fl.mode == "enforce" || fl.out.failsOnUnexpected())
	out := e.stdout
	var file *os.File
	if fl.report != "" {
		if file, err = os.Create(fl.report); err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("write report: %w", err)}
		}
		defer file.Close()
		out = file
	}
	ciOutputs(e.stderr, r, fl.report)
	err = fl.out.write(out, r)
	if err == nil && file != nil {
		err = file.Close()
	}
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	// The verdicts Judge set decide: calls the policy does not allow (and
	// the names --block refused) in enforce mode, then --fail-on.
	policyFail := slices.ContainsFunc(failing, func(d *report.Destination) bool {
		return d.Fails == report.FailBlocked || d.Fails == report.FailUnexpected
	})
	switch {
	case stopped:
		return &exitError{code: ExitStopped, err: fmt.Errorf("interrupted: egress stopped %s (SIGTERM passed on)", args[0])}
	case cmdCode != 0:
		if len(failing) > 0 {
			fmt.Fprintf(e.stderr, "egress: %d destination(s) fail the check: %s\n", len(failing), report.FailureSummary(failing, 5))
		}
		return &exitError{code: cmdCode, err: fmt.Errorf("%s exited with status %d", args[0], cmdCode), command: true}
	case policyFail && fl.mode == "enforce":
		return failedErr(ExitUnexpected, failing)
	case len(failing) > 0:
		return failedErr(ExitRunFindings, failing)
	case r.Stats.EventsLost > 0 && (failLost || fl.mode == "enforce"):
		return &exitError{code: ExitRunFindings, err: fmt.Errorf("the trace is incomplete: %d kernel event(s) lost (--mode audit reports without failing)", r.Stats.EventsLost)}
	}
	if r.Check != nil && r.Check.Unexpected > 0 {
		var unexpected []*report.Destination
		for _, d := range report.Destinations(r) {
			if d.Unexpected {
				unexpected = append(unexpected, d)
			}
		}
		fmt.Fprintf(e.stderr, "egress: audit: %d unexpected destination(s) (--mode enforce fails on them): %s\n",
			len(unexpected), report.FailureSummary(unexpected, 5))
	}
	return nil
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

// ExitStopped is egress run's exit code when egress itself was interrupted
// (SIGINT or SIGTERM) and stopped the command: not the command's failure.
const ExitStopped = 130

// confinementHint says in the report what the command ran without.
func confinementHint(c cgrouprun.Confinement) report.Hint {
	text := "the command ran without the capabilities " + strings.Join(c.Dropped(), ", ") +
		", with no_new_privs, in its own cgroup namespace (rooted at the run's cgroup) and pid namespace"
	if len(c.Keep) > 0 {
		text += "; kept on request (--keep-caps): " + strings.Join(c.Keep, ", ")
	}
	return report.Hint{Kind: "confinement", Subject: "privileges", Text: text}
}

type sockSink func(*event.Sock)

func (f sockSink) Sock(s *event.Sock) { f(s) }

// feedDNS gives the analyzer a proxied exchange as the app saw it: its
// query to the resolver and the answer, over UDP or TCP. proc, when known,
// is the process whose socket sent the query.
func feedDNS(an *analyze.Analyzer, x dnsproxy.Exchange, proc *event.Process) {
	proto := event.ProtoUDP
	if x.TCP {
		proto = event.ProtoTCP
	}
	q := event.Packet{Time: x.QueryTime, WireLen: 28 + len(x.Query), Dir: event.DirOut,
		Src: x.Client.Addr(), Dst: x.Upstream.Addr(), Proto: proto,
		SrcPort: x.Client.Port(), DstPort: x.Upstream.Port(), Proc: proc}
	an.DNSMessage(&q, x.Query, x.TCP)
	if x.Reply == nil {
		return
	}
	a := event.Packet{Time: x.ReplyTime, WireLen: 28 + len(x.Reply), Dir: event.DirIn,
		Src: x.Upstream.Addr(), Dst: x.Client.Addr(), Proto: proto,
		SrcPort: x.Upstream.Port(), DstPort: x.Client.Port()}
	an.DNSMessage(&a, x.Reply, x.TCP)
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

// dnsPolicy decides for the DNS proxy: with enforcement, names the policy
// cannot allow are refused before they are forwarded, and the addresses
// of allowed names enter the kernel's allow map before the answer goes out.
type dnsPolicy struct {
	pol     *rules.Policy
	enforce bool
	blocker *block.Blocker
	names   func(name string, addrs []netip.Addr)
}

func (d *dnsPolicy) Ask(name string) bool {
	if !d.enforce {
		return true
	}
	// A lookup is a call: a name no host entry allows is refused before it
	// leaves, whatever cidr entries allow (docs/rules.md).
	return hasHostGrant(d.pol, name)
}

// hasHostGrant reports whether a host entry allows one of names (a name
// and its CNAME chain) and no deny entry refuses them.
func hasHostGrant(pol *rules.Policy, names ...string) bool {
	grants, denied := pol.NameGrants(names...)
	return !denied && len(grants) > 0
}

func (d *dnsPolicy) Answered(name string, cnames []string, addrs []netip.Addr) bool {
	d.names(strings.TrimSuffix(name, "."), addrs)
	if !d.enforce {
		return true
	}
	grants, denied := d.pol.NameGrants(append([]string{name}, cnames...)...)
	if denied {
		return false
	}
	if len(addrs) == 0 {
		return len(grants) > 0 // NODATA, NXDOMAIN or a CNAME only: nothing to open
	}
	ok := false
	for _, a := range addrs {
		for _, gr := range grants {
			if gr.Prefix.IsValid() && !gr.Prefix.Contains(a.Unmap()) {
				continue
			}
			if err := allowGrant(d.blocker, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), gr); err != nil {
				return false // cannot open the way: refuse rather than let the app hang
			}
			ok = true
		}
	}
	return ok
}

// maxRangePorts is the widest port range entered port by port; a wider
// range becomes "any port" in the kernel map (the report still applies
// the exact range).
const maxRangePorts = 1024

// allowGrant enters one grant for prefix into the kernel's allow map.
func allowGrant(b *block.Blocker, prefix netip.Prefix, gr rules.Grant) error {
	var proto uint8
	switch gr.Proto {
	case "tcp":
		proto = event.ProtoTCP
	case "udp":
		proto = event.ProtoUDP
	case "":
	default:
		return nil // ICMP and others are not connect()ed: nothing to open
	}
	if len(gr.Ports) == 0 {
		return b.Allow(prefix, 0, proto)
	}
	for _, pr := range gr.Ports {
		if int(pr.Hi)-int(pr.Lo) >= maxRangePorts {
			return b.Allow(prefix, 0, proto)
		}
		for p := int(pr.Lo); p <= int(pr.Hi); p++ {
			if err := b.Allow(prefix, uint16(p), proto); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxSummaryRows bounds the destinations of the step summary: a busy job's
// summary stays readable, and the report file has them all.
const maxSummaryRows = 25

// ciOutputs adds what a CI runner shows next to the report: on GitHub
// Actions (GITHUB_ACTIONS=true) error and warning annotations on stderr,
// and a Markdown summary appended to $GITHUB_STEP_SUMMARY when it is set.
// A summary that cannot be written is a warning, not a failed check.
func ciOutputs(stderr io.Writer, r *report.Report, detail string) {
	if os.Getenv("GITHUB_ACTIONS") == "true" {
		if err := report.WriteGitHubAnnotations(stderr, r); err != nil {
			fmt.Fprintf(stderr, "egress: %v\n", err)
		}
	}
	path := os.Getenv("GITHUB_STEP_SUMMARY")
	if path == "" {
		return
	}
	var b bytes.Buffer
	if err := report.WriteSummary(&b, r, report.SummaryOptions{MaxRows: maxSummaryRows, Detail: detail}); err != nil {
		fmt.Fprintf(stderr, "egress: %v\n", err)
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, err = f.Write(b.Bytes())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "egress: warning: writing the step summary: %v\n", err)
	}
}
