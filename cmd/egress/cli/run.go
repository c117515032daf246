//go:build linux

package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/block"
	"github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/capture/pcapng"
	"github.com/egress-dev/egress/internal/cgrouprun"
	"github.com/egress-dev/egress/internal/dnsproxy"
	"github.com/egress-dev/egress/internal/enforce"
	"github.com/egress-dev/egress/pipeline"
)

type runFlags struct {
	out       outputFlags
	mode      string
	block     bool
	resolvers []string
	report    string
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

Exit codes: CMD's status when it failed; 3 unexpected calls (enforce mode);
1 --fail-on matched; 2 usage or set-up error; 0 otherwise (docs/ci.md).`,
		Example: `  egress run --rules egress.yaml -- npm test
  egress run --rules egress.yaml --block --format junit --report egress.xml -- ./login.sh
  egress run --mode audit --format json -- curl -s https://example.com/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return usageErr("put -- before the command: egress run [flags] -- CMD ARGS")
			}
			return runRun(cmd.Context(), e, args, &fl)
		},
	}
	cmd.Flags().SetInterspersed(false)
	fl.out.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.mode, "mode", "enforce", "enforce: exit 3 when CMD made unexpected calls; audit: report them only")
	f.BoolVar(&fl.block, "block", false, "refuse calls the --rules policy does not allow, at connect() (needs --rules)")
	f.StringSliceVar(&fl.resolvers, "resolver", nil, "resolvers the DNS proxy forwards to (ADDR or ADDR:PORT; default: /etc/resolv.conf)")
	f.StringVar(&fl.report, "report", "", "write the report to this file instead of stdout (CMD's output stays on stdout)")
	f.StringVarP(&fl.write, "write", "w", "", "write what was seen to this pcapng file (egress replay of it gives the same report)")
	return cmd
}

func runRun(ctx context.Context, e *env, args []string, fl *runFlags) error {
	if err := fl.out.validate(); err != nil {
		return err
	}
	if fl.mode != "enforce" && fl.mode != "audit" {
		return usageErr("unknown --mode %q: use enforce or audit", fl.mode)
	}
	if fl.block && fl.out.rules == "" {
		return usageErr("--block needs --rules FILE (the allowlist of what may be reached)")
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
	pol := cfg.Policy
	upstreams, err := resolvers(fl.resolvers)
	if err != nil {
		return usageErr("%v", err)
	}
	if len(upstreams) == 0 && fl.block {
		return usageErr("--block needs a resolver for the DNS proxy: none in /etc/resolv.conf, give --resolver ADDR")
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return usageErr("%v", err)
	}

	g, err := cgrouprun.New("egress-run")
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer func() {
		if err := g.Remove(); err != nil {
			fmt.Fprintf(e.stderr, "egress: %v\n", err)
		}
	}()

	// The proxy serves until the sources have been drained.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	defer func() { stopBg(); bg.Wait() }()
	var sources []capture.Source
	var backend string
	if len(upstreams) > 0 {
		exchanges := dnsproxy.NewExchanges(4096)
		dp := &enforce.DNSPolicy{Policy: pol, Enforce: fl.block}
		proxy, err := dnsproxy.Listen(dnsproxy.Config{Upstreams: upstreams, Policy: dp, Observe: exchanges.Observe})
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		loopback := true
		if pol != nil {
			loopback, _ = pol.Defaults()
		}
		blocker, err := block.Open(block.Options{Cgroup: g.Path, Enforce: fl.block, AllowLoopback: loopback,
			ProxyPort: proxy.Port(), Proxy6: proxy.IPv6()})
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		defer blocker.Close()
		dp.Blocker = blocker
		if fl.block {
			if err := enforce.AllowAddrGrants(blocker, pol); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
		}
		bg.Go(func() { proxy.Serve(bgCtx) })
		sources = append(sources, exchanges, blocker.Source())
		cfg.Refusals = true
		backend = ", dns proxy"
		if fl.block {
			backend += ", cgroup connect/sendmsg blocking"
		}
	} else {
		fmt.Fprintln(e.stderr, "egress: no resolver in /etc/resolv.conf: DNS is not proxied, calls are named only by address")
	}

	tr, err := ebpf.Open(ebpf.Options{CgroupID: g.ID})
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer tr.Close()
	cfg.Sources = append([]capture.Source{tr.Source()}, sources...)
	cfg.Backend = tr.Backend() + backend
	if fl.write != "" {
		w, err := pcapng.Create(fl.write)
		if err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
		defer w.Abort()
		cfg.Tee = w
	}

	cfg.Analyze.From = time.Now().UnixNano()
	cmd := g.Command(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	if fl.report == "" {
		// The report goes to stdout after CMD's output; keep them apart.
		cmd.Stdout = e.stderr
	}
	cmd.WaitDelay = 2 * time.Second
	// The window is CMD's run; what it left running dies with it, and the
	// pipeline's drain lets the kernel's last records (closes, refusals)
	// reach the ring buffers.
	var runErr error
	done := make(chan struct{})
	go func() {
		runErr = cmd.Run()
		g.Kill()
		close(done)
	}()
	cfg.Window = done
	res := pipeline.Run(ctx, cfg)
	cmdCode := 0
	var ee *exec.ExitError
	switch {
	case errors.As(runErr, &ee):
		cmdCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			cmdCode = 128 + int(ws.Signal())
		}
	case runErr != nil:
		return &exitError{code: ExitUsage, err: fmt.Errorf("run %s: %w", args[0], runErr)}
	}

	ciOutputs(e.stderr, res.Report)
	err = fl.out.write(out, res.Report)
	if f, ok := out.(*os.File); ok && err == nil && fl.report != "" {
		err = f.Close()
	}
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	err = exit(res, ending{cmdName: args[0], cmdCode: cmdCode, enforce: fl.mode == "enforce"})
	if err == nil && res.Unexpected > 0 {
		fmt.Fprintf(e.stderr, "egress: audit: %d unexpected destination(s)\n", res.Unexpected)
	}
	return err
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
