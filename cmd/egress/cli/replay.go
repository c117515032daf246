package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/baseline"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// outputFlags are shared by every command that prints a report.
type outputFlags struct {
	format    string
	failOn    []string
	all       bool
	rules     string
	baseline  string
	catalogs  []string
	noCatalog bool
	appFrames string // --app-frames: the regexp for "the application's own code" in stacks

	pol       *rules.Policy // policy() loads it once
	polLoaded bool
}

func (o *outputFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.format, "format", "o", "table", "output format: table, json, junit (one test case per destination), markdown or html (a timeline)")
	f.StringSliceVar(&o.failOn, "fail-on", nil, "fail the check (exit 1; egress run: 4) when a call has one of these outcomes: timeout, pending, refused, rejected, aborted, nxdomain, servfail, failed (all of those), or unexpected (not allowed by --rules/--baseline)")
	f.BoolVar(&o.all, "all", false, "table: list every call (by default successful calls beyond 40 are summarised)")
	f.StringVar(&o.rules, "rules", "", "allowlist (YAML, docs/rules.md): calls it does not allow are unexpected (--fail-on unexpected)")
	f.StringVar(&o.baseline, "baseline", "", "an earlier JSON report: its destinations are expected too, so only what is new is unexpected (docs/ci.md)")
	f.StringSliceVar(&o.catalogs, "catalog", nil, "extra catalog of known phone-homes (YAML), added to the built-in one")
	f.BoolVar(&o.noCatalog, "no-catalog", false, "do not label calls with the catalog of known phone-homes")
	f.StringVar(&o.appFrames, "app-frames", "", "stacks (--stacks): frames whose function, file or module match this regexp are the application's own code, for \"called from\" (default: docs/watch.md)")
}

// appFramesRe compiles --app-frames (nil when unset: the default rule).
func (o *outputFlags) appFramesRe() *regexp.Regexp {
	if o.appFrames == "" {
		return nil
	}
	return regexp.MustCompile(o.appFrames) // validated
}

var failOutcomes = map[string][]string{
	"timeout":  {report.Timeout},
	"pending":  {report.Pending},
	"refused":  {report.Refused},
	"rejected": {report.Rejected},
	"aborted":  {report.Aborted},
	"nxdomain": {report.NXDomain},
	"servfail": {report.ServFail},
	"failed":   {report.Timeout, report.Pending, report.Refused, report.Rejected, report.Aborted, report.NXDomain, report.ServFail},
	// "unexpected" is not an outcome: a call the --rules policy does not allow.
	"unexpected": nil,
}

func (o *outputFlags) validate() error {
	if _, err := regexp.Compile(o.appFrames); err != nil {
		return usageErr("--app-frames: %v", err)
	}
	if o.format != "table" && o.format != "json" && o.format != "junit" && o.format != "markdown" && o.format != "html" {
		return usageErr("unknown --format %q: use table, json, junit, markdown or html", o.format)
	}
	for _, f := range o.failOn {
		if _, ok := failOutcomes[f]; !ok {
			return usageErr("unknown --fail-on value %q: use one of timeout, pending, refused, rejected, aborted, nxdomain, servfail, failed, unexpected", f)
		}
		if f == "unexpected" && o.rules == "" && o.baseline == "" {
			return usageErr("--fail-on unexpected needs --rules FILE or --baseline OLD.json (what says what is expected)")
		}
	}
	return nil
}

// annotate applies the rules and the catalog to r.
func (o *outputFlags) annotate(r *report.Report) error {
	var (
		pol *rules.Policy
		cat *rules.Catalog
		err error
	)
	if pol, err = o.policy(); err != nil {
		return err
	}
	if !o.noCatalog {
		if cat, err = rules.LoadCatalogWith(o.catalogs...); err != nil {
			return usageErr("%v", err)
		}
	}
	rules.Annotate(r, pol, cat)
	return nil
}

// policy is the --rules policy extended with the destinations of the
// --baseline report; nil when neither is given. Loaded once.
func (o *outputFlags) policy() (*rules.Policy, error) {
	if o.polLoaded {
		return o.pol, nil
	}
	var pol *rules.Policy
	var err error
	if o.rules != "" {
		if pol, err = rules.Load(o.rules); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	if o.baseline != "" {
		set, err := baseline.Load(o.baseline)
		if err != nil {
			return nil, usageErr("--baseline: %v", err)
		}
		allowed, _ := set.Allowed()
		if pol, err = rules.Extend(pol, "baseline "+o.baseline, allowed); err != nil {
			return nil, usageErr("--baseline: %v", err)
		}
	}
	o.pol, o.polLoaded = pol, true
	return pol, nil
}

// judge decides once which calls fail the check (report.Judge): unexpected
// calls when enforce, and the outcomes --fail-on names. The exit decision
// and every output read the verdicts it sets.
func (o *outputFlags) judge(r *report.Report, enforce bool) []*report.Destination {
	var outcomes []string
	for _, f := range o.failOn {
		for _, out := range failOutcomes[f] {
			if !slices.Contains(outcomes, out) {
				outcomes = append(outcomes, out)
			}
		}
	}
	return report.Judge(r, report.Criteria{Rules: o.rules, Baseline: o.baseline, Enforce: enforce, FailOn: outcomes})
}

// failsOnUnexpected says whether --fail-on names unexpected calls (replay
// and watch; egress run fails on them in enforce mode).
func (o *outputFlags) failsOnUnexpected() bool { return slices.Contains(o.failOn, "unexpected") }

// write prints the report.
func (o *outputFlags) write(w io.Writer, r *report.Report) error {
	switch o.format {
	case "json":
		return report.WriteJSON(w, r)
	case "junit":
		return report.WriteJUnit(w, r)
	case "markdown":
		return report.WriteMarkdown(w, r)
	case "html":
		return report.WriteHTML(w, r)
	}
	return report.WriteTable(w, r, report.TableOptions{All: o.all})
}

// failedErr is the error of a check that failed: how many destinations
// and which.
func failedErr(code int, failing []*report.Destination) error {
	return &exitError{code: code, err: fmt.Errorf("%d destination(s) fail the check: %s", len(failing), report.FailureSummary(failing, 5))}
}

type replayFlags struct {
	out        outputFlags
	cpuProfile string
	memProfile string
	local      string
	from, to   string
	progress   string
}

func newReplayCmd(e *env) *cobra.Command {
	var fl replayFlags
	cmd := &cobra.Command{
		Use:   "replay CAPTURE",
		Short: "Explain the outbound calls in a packet capture (pcap, pcapng, .gz, - for stdin)",
		Long: `replay reads a capture (pcap or pcapng, optionally gzip-compressed, or - for stdin),
finds every outbound TCP connection attempt and DNS lookup, decides its outcome
(established, refused, rejected, timeout, pending, aborted; answered, nodata,
nxdomain, servfail, refused, timeout), names the destinations from the DNS
answers, TLS SNI or HTTP Host seen in the capture, and reports how much of the
window the calls blocked.

Local addresses (whose outbound calls count) are taken from --local, else from
the capture (packet direction in Linux cooked or pcapng captures, else hosts that
both accept and make connections, else every host that makes connections).`,
		Example: `  egress replay testdata/captures/story-drop-path.pcap
  egress replay login.pcapng --format json --fail-on timeout,rejected
  egress replay big.pcap.gz --local 198.18.0.0/15 --from 10s --to 2m
  egress replay ci.pcapng --rules allow.yaml --fail-on unexpected --format json
  tcpdump -i any -w - | egress replay -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReplay(cmd.Context(), e, args[0], &fl)
		},
	}
	fl.out.register(cmd)
	f := cmd.Flags()
	f.StringVar(&fl.local, "local", "", "this host's addresses: CIDRs or addresses, comma-separated, or 'any' to report every attempt")
	f.StringVar(&fl.from, "from", "", "window start: RFC 3339 time, or an offset from the first packet (e.g. 2.5s)")
	f.StringVar(&fl.to, "to", "", "window end: RFC 3339 time, or an offset from the first packet (e.g. 2m)")
	f.StringVar(&fl.progress, "progress", "auto", "progress on stderr: auto (when it is a terminal), always or never")
	f.StringVar(&fl.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file (for developers)")
	f.MarkHidden("cpuprofile")
	f.StringVar(&fl.memProfile, "memprofile", "", "write a Go heap profile, taken when the capture is read, to this file (for developers)")
	f.MarkHidden("memprofile")
	return cmd
}

func runReplay(ctx context.Context, e *env, name string, fl *replayFlags) error {
	if err := fl.out.validate(); err != nil {
		return err
	}
	cfg, err := replayConfig(fl)
	if err != nil {
		return err
	}
	var rd *pcapfile.Reader
	if name == "-" {
		rd, err = pcapfile.NewReader("stdin", e.stdin)
	} else {
		rd, err = pcapfile.Open(name)
	}
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	defer rd.Close()
	// A file written by `egress watch --write` carries the live window:
	// replaying it covers the same span, so both give the same report.
	if w, ok := rd.Watch(); ok && fl.from == "" && fl.to == "" {
		cfg.From, cfg.To = w.From, w.To
	}

	if fl.cpuProfile != "" {
		pf, err := os.Create(fl.cpuProfile)
		if err != nil {
			return usageErr("--cpuprofile: %v", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return usageErr("--cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	cfg.AppFrames = fl.out.appFramesRe()
	an := analyze.New(cfg)
	stopProgress := startProgress(e.stderr, name, rd, fl.progress)
	readErr := rd.Run(ctx, an)
	stopProgress()
	if fl.memProfile != "" {
		if err := writeHeapProfile(fl.memProfile); err != nil {
			return usageErr("--memprofile: %v", err)
		}
	}
	if werr := an.WindowError(); werr != nil && readErr == nil {
		return usageErr("%v", werr)
	}
	an.SourceStats(rd.Stats())
	r := an.Finish()
	r.Source = name
	r.Backend = rd.Format()
	if readErr != nil {
		r.Errors = append(r.Errors, readErr.Error())
	}
	if err := fl.out.annotate(r); err != nil {
		return err
	}
	failing := fl.out.judge(r, fl.out.failsOnUnexpected())
	ciOutputs(e.stderr, r, "")
	if err := fl.out.write(e.stdout, r); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	if readErr != nil {
		if errors.Is(readErr, context.Canceled) {
			return &exitError{code: ExitUsage, err: fmt.Errorf("interrupted: the report covers what was read")}
		}
		return &exitError{code: ExitUsage, err: readErr}
	}
	if len(failing) > 0 {
		return failedErr(ExitFindings, failing)
	}
	return nil
}

func replayConfig(fl *replayFlags) (analyze.Config, error) {
	var cfg analyze.Config
	switch strings.TrimSpace(fl.local) {
	case "":
	case "any":
		cfg.LocalAny = true
	default:
		for _, s := range strings.Split(fl.local, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				cfg.Local = append(cfg.Local, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return cfg, usageErr("--local: %q is neither an address nor a CIDR (e.g. 198.18.0.2 or 198.18.0.0/15, or 'any')", s)
			}
			cfg.Local = append(cfg.Local, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	var err error
	if cfg.From, cfg.FromOffset, err = windowEdge("--from", fl.from); err != nil {
		return cfg, err
	}
	if cfg.To, cfg.ToOffset, err = windowEdge("--to", fl.to); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// windowEdge parses an absolute time or an offset from the first packet.
func windowEdge(flag, s string) (abs int64, off time.Duration, err error) {
	if s == "" {
		return 0, 0, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixNano(), 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, 0, usageErr("%s %q: give an RFC 3339 time (2026-11-27T16:00:00Z) or an offset from the first packet (2.5s, 1m)", flag, s)
	}
	return 0, d, nil
}

// startProgress shows how far the reader got, on a terminal only.
func startProgress(w io.Writer, name string, rd *pcapfile.Reader, mode string) (stop func()) {
	if mode == "never" || (mode != "always" && !isTerminal(w)) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-tick.C:
				n, total := rd.Progress()
				if total > 0 {
					fmt.Fprintf(w, "\rreading %s: %3.0f%% (%d of %d MB)", name, 100*float64(n)/float64(total), n>>20, total>>20)
				} else {
					fmt.Fprintf(w, "\rreading %s: %d MB", name, n>>20)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
