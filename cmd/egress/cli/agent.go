//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/capture/nscapture"
	"github.com/egress-dev/egress/containers"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/rotate"
	"github.com/egress-dev/egress/metrics"
	"github.com/egress-dev/egress/pipeline"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

type agentFlags struct {
	output        string
	maxSize       int64
	maxFiles      int
	metricsListen string
	cgroups       []string
	containers    []string
	comms         []string
	loopback      bool
	rules         string
	catalogs      []string
	noCatalog     bool
	summaryEvery  time.Duration
	rescan        time.Duration
	maxNetNS      int
	limits        metrics.Limits
	hostRoot      string
}

func newAgentCmd(e *env) *cobra.Command {
	var fl agentFlags
	cmd := &cobra.Command{
		Use:   "agent [--output FILE] [--metrics-listen ADDR]",
		Short: "Watch every process on the host, for days: settled calls as JSON lines and Prometheus metrics",
		Long: `agent watches the outbound calls of every process on the host (or those of
--cgroup, --container, --comm) with the same eBPF tracepoints as watch, and the
DNS traffic of every network namespace its processes use. Each call is written
as one JSON line as soon as it is settled (stdout, or --output FILE rotated by
size), with the container and pod it came from, and counted in Prometheus
metrics on --metrics-listen (/metrics). Every table is bounded, so memory stays
flat however long it runs; a line of type "interval" every --summary-every says
what the last interval held and what was lost.

SIGHUP reloads --rules and the catalogs (a bad file keeps the old ones, and says
so) and reopens --output. SIGTERM or Ctrl-C drains what the kernel still holds,
writes the summary line and exits with every program detached.

Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_SYS_PTRACE to
enter other namespaces) and Linux >= 5.8 with BTF; see docs/agent.md.`,
		Example: `  sudo egress agent --metrics-listen 127.0.0.1:9464
  sudo egress agent --output /var/log/egress/calls.jsonl --max-size 100000000 --rules /etc/egress/allow.yaml
  sudo egress agent --container web --comm php-fpm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), e, &fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.output, "output", "", "write the JSON lines to this file, rotated by size (default: stdout)")
	f.Int64Var(&fl.maxSize, "max-size", 100<<20, "with --output: rotate when the file would pass this many bytes")
	f.IntVar(&fl.maxFiles, "max-files", 5, "with --output: rotated files kept (FILE.1 ... FILE.N)")
	f.StringVar(&fl.metricsListen, "metrics-listen", "", "serve Prometheus metrics on this address (/metrics), e.g. 127.0.0.1:9464")
	f.StringSliceVar(&fl.cgroups, "cgroup", nil, "only processes in this cgroup v2 path or below it (repeatable), e.g. /system.slice/nginx.service")
	f.StringSliceVar(&fl.containers, "container", nil, "only processes of this container: name, ID or ID prefix of 12+ digits (repeatable)")
	f.StringSliceVar(&fl.comms, "comm", nil, "only processes of this command name (repeatable)")
	f.BoolVar(&fl.loopback, "loopback", false, "also report calls to the host itself (loopback): not egress, so left out by default")
	f.StringVar(&fl.rules, "rules", "", "allowlist (YAML, docs/rules.md): calls it does not allow are unexpected (reloaded on SIGHUP)")
	f.StringSliceVar(&fl.catalogs, "catalog", nil, "extra catalog of known phone-homes (YAML), added to the built-in one (reloaded on SIGHUP)")
	f.BoolVar(&fl.noCatalog, "no-catalog", false, "do not label calls with the catalog of known phone-homes")
	f.DurationVar(&fl.summaryEvery, "summary-every", time.Minute, "write an interval line this often (0: never)")
	f.DurationVar(&fl.rescan, "netns-rescan", 5*time.Second, "how often /proc is scanned for new network namespaces to capture DNS in")
	f.IntVar(&fl.maxNetNS, "max-netns", 64, "network namespaces captured at once (past it: counted in egress_agent_netns_skipped_total)")
	f.IntVar(&fl.limits.Destinations, "metrics-destinations", 100, "distinct destination label values; later ones are \"other\"")
	f.IntVar(&fl.limits.Processes, "metrics-processes", 50, "distinct process label values; later ones are \"other\"")
	f.IntVar(&fl.limits.Containers, "metrics-containers", 200, "distinct container label values; later ones are \"other\"")
	f.IntVar(&fl.limits.Ports, "metrics-ports", 50, "distinct port label values; later ones are \"other\"")
	f.StringVar(&fl.hostRoot, "host-root", "", "where the host's /var/lib and /var/log are mounted, for container names (the DaemonSet: /host)")
	return cmd
}

// ruleSet is what SIGHUP swaps.
type ruleSet struct {
	pol *rules.Policy
	cat *rules.Catalog
	// crit is what the verdicts are judged by (report.Judge), as in watch
	// and replay: with --rules, calls the policy does not allow are
	// unexpected (audit: the agent reports them, it fails nothing).
	crit *report.Criteria
}

// judge gives the calls of r the verdicts every other command gives them:
// the policy's and the catalog's (rules.Annotate), then report.Judge's.
func (rs *ruleSet) judge(r *report.Report) {
	if rs.pol != nil || rs.cat != nil {
		rules.Annotate(r, rs.pol, rs.cat)
	}
	if rs.crit != nil {
		report.Judge(r, *rs.crit)
	}
}

func (fl *agentFlags) loadRules() (*ruleSet, error) {
	rs := &ruleSet{}
	var err error
	if fl.rules != "" {
		if rs.pol, err = rules.Load(fl.rules); err != nil {
			return nil, err
		}
		rs.crit = &report.Criteria{Rules: fl.rules}
	}
	if !fl.noCatalog {
		if rs.cat, err = rules.LoadCatalogWith(fl.catalogs...); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func runAgent(ctx context.Context, e *env, fl *agentFlags) error {
	if fl.maxSize <= 0 || fl.maxFiles < 1 {
		return usageErr("--max-size must be positive and --max-files at least 1")
	}
	rs, err := fl.loadRules()
	if err != nil {
		return usageErr("%v", err)
	}
	// SIGHUP is taken before anything is attached: its default would kill
	// the agent.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a := &agent{fl: fl, res: containers.NewResolver("/proc", fl.hostRoot), m: metrics.New(fl.limits)}
	a.rules.Store(rs)
	var out io.Writer = e.stdout
	if fl.output != "" {
		f, err := rotate.Open(fl.output, fl.maxSize, fl.maxFiles)
		if err != nil {
			return usageErr("%v", err)
		}
		defer f.Close()
		a.file, out = f, f
	}
	a.out = &lockedWriter{w: out}

	attachStart := time.Now()
	tr, err := ebpf.Open(ebpf.Options{AllProcesses: true})
	if err != nil {
		return &exitError{code: ExitUsage, err: fmt.Errorf("cannot watch in the kernel: %w", err)}
	}
	defer tr.Close()
	a.tr = tr
	var nsMatch func(int) bool
	if a.filtered() {
		nsMatch = func(pid int) bool { return a.match(pid, readComm(pid)) }
	}
	a.ns = nscapture.New(nscapture.Options{Every: fl.rescan, Max: fl.maxNetNS, Match: nsMatch})
	a.registerHealth()

	var srv *http.Server
	if fl.metricsListen != "" {
		ln, err := net.Listen("tcp", fl.metricsListen)
		if err != nil {
			return usageErr("--metrics-listen: %v", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", a.m.Handler())
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		fmt.Fprintf(e.stderr, "egress: agent: metrics on http://%s/metrics\n", ln.Addr())
	}

	cfg := pipeline.Config{
		Live: true, EndAtClose: true,
		Sources: []capture.Source{containerSource{tr.Source(), a.res}, a.ns},
		Source:  "agent",
		Backend: tr.Backend() + " + af_packet dns+icmp in every network namespace",
		Window:  ctx.Done(),
		Stream:  a,
		Analyze: a.analyzeConfig(),
		Progress: func(st report.Stats) {
			a.an.Store(&st)
		},
	}
	what := "every process"
	if a.filtered() {
		what = "processes matching " + a.filterString()
	}
	fmt.Fprintf(e.stderr, "egress: agent: watching %s with %s (rescanned every %v, at most %d); attached in %v\n",
		what, cfg.Backend, fl.rescan, fl.maxNetNS, time.Since(attachStart).Round(time.Millisecond))

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.background(bg, e.stderr, hup) }()
	res := pipeline.Run(ctx, cfg)
	stopBG()
	wg.Wait()
	// The summary is judged like the lines, by the rules in use at the end.
	a.rules.Load().judge(res.Report)
	werr := report.NewJSONL(a.out).Summary(res.Report)
	if err := tr.Close(); err != nil {
		fmt.Fprintf(e.stderr, "egress: agent: %v\n", err)
	}
	fmt.Fprintf(e.stderr, "egress: agent: stopped; %d connections and %d lookups written, %d events lost\n",
		a.conns.Load(), a.lookups.Load(), tr.Lost()+a.ns.Stats().Lost)
	if res.SourceErr != nil && !errors.Is(res.SourceErr, context.Canceled) {
		return &exitError{code: ExitUsage, err: fmt.Errorf("capture failed: %w", res.SourceErr)}
	}
	if res.StreamErr != nil {
		return &exitError{code: ExitUsage, err: res.StreamErr}
	}
	if werr != nil {
		return &exitError{code: ExitUsage, err: werr}
	}
	return nil
}

// agent is the pipeline's Stream: it attributes each settled call to its
// container, filters, judges it with the current rules, counts it in the
// metrics and writes it as one JSON line.
type agent struct {
	fl    *agentFlags
	res   *containers.Resolver
	m     *metrics.Metrics
	rules atomic.Pointer[ruleSet]
	tr    *ebpf.Tracer
	ns    *nscapture.Source
	out   *lockedWriter
	file  *rotate.File

	conns, lookups, leftOut, loopback, reloads, reloadErrors atomic.Uint64
	// an is the analyzer's counters, as the pipeline last reported them.
	an atomic.Pointer[report.Stats]
	// interval counts, reset by each interval line
	ivMu       sync.Mutex
	ivOutcomes map[string]uint64
}

func (a *agent) analyzeConfig() (c analyze.Config) {
	// Every kernel-seen connect is the host's own; every call is wanted,
	// however long the agent runs (memory stays bounded by the fold).
	c.LocalAny, c.SettleFolded = true, true
	c.From = time.Now().UnixNano()
	return c
}

func (a *agent) filtered() bool {
	return len(a.fl.cgroups) > 0 || len(a.fl.containers) > 0 || len(a.fl.comms) > 0
}

func (a *agent) filterString() string {
	var parts []string
	for _, p := range []struct {
		flag string
		v    []string
	}{{"--cgroup", a.fl.cgroups}, {"--container", a.fl.containers}, {"--comm", a.fl.comms}} {
		if len(p.v) > 0 {
			parts = append(parts, p.flag+" "+strings.Join(p.v, ","))
		}
	}
	return strings.Join(parts, " and ")
}

// match applies the filters: each given filter must match (any of its values).
func (a *agent) match(pid int, comm string) bool {
	if !a.filtered() {
		return true
	}
	if pid <= 0 {
		return false
	}
	info := a.res.ForProcess(pid, comm)
	if len(a.fl.comms) > 0 && !contains(a.fl.comms, comm) {
		return false
	}
	if len(a.fl.containers) > 0 {
		ok := false
		for _, c := range a.fl.containers {
			ok = ok || info.Match(c)
		}
		if !ok {
			return false
		}
	}
	if len(a.fl.cgroups) > 0 {
		cg, ok := a.res.CgroupPath(pid), false
		for _, p := range a.fl.cgroups {
			p = strings.TrimSuffix(p, "/")
			ok = ok || cg == p || strings.HasPrefix(cg, p+"/") || p == ""
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// containerJSON is the "container" object the agent adds to each line.
type containerJSON struct {
	ID      string `json:"id"`
	Runtime string `json:"runtime,omitempty"`
	Name    string `json:"name,omitempty"`
	PodUID  string `json:"pod_uid,omitempty"`
	Pod     string `json:"pod,omitempty"`
}

func containerOf(info containers.Info) *containerJSON {
	if !info.Known() {
		return nil
	}
	return &containerJSON{ID: info.ID, Runtime: info.Runtime, Name: info.Name, PodUID: info.PodUID, Pod: info.Pod}
}

// containerLabel is the metrics' container label: the name, else the
// short ID docker ps shows.
func containerLabel(info containers.Info) string {
	switch {
	case !info.Known():
		return ""
	case info.Name != "":
		return info.Name
	}
	return info.ID[:12]
}

func derefOr[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// Connection handles one settled connection.
func (a *agent) Connection(c *report.Connection) error {
	if c.Loopback && !a.fl.loopback {
		a.loopback.Add(1)
		return nil
	}
	pid, comm := derefOr(c.PID), derefOr(c.Comm)
	if !a.match(pid, comm) {
		a.leftOut.Add(1)
		return nil
	}
	var info containers.Info
	if pid > 0 {
		info = a.res.ForProcess(pid, comm)
	}
	// The pipeline was given no rules: the agent's change on SIGHUP, so
	// it judges each call with the ones in use now.
	r := &report.Report{Connections: []report.Connection{*c}}
	a.rules.Load().judge(r)
	*c = r.Connections[0]
	dest := c.Host
	if dest == "" && c.DstIP.IsValid() {
		dest = c.DstIP.String()
	}
	a.m.Observe(metrics.Call{Destination: dest, Port: c.DstPort, Outcome: c.Outcome.String(), Process: comm,
		Container: containerLabel(info), Count: c.Count, BlockedSeconds: c.BlockedMS / 1000,
		Failed: c.Outcome != report.Established, Unexpected: c.Verdict.Unexpected()})
	a.conns.Add(1)
	a.countOutcome("connection " + c.Outcome.String())
	return a.line(struct {
		Type string `json:"type"`
		*report.Connection
		Container *containerJSON `json:"container,omitempty"`
	}{"connection", c, containerOf(info)})
}

// Lookup handles one settled lookup.
func (a *agent) Lookup(l *report.Lookup) error {
	pid, comm := derefOr(l.PID), derefOr(l.Comm)
	if !a.match(pid, comm) {
		a.leftOut.Add(1)
		return nil
	}
	var info containers.Info
	if pid > 0 {
		info = a.res.ForProcess(pid, comm)
	}
	r := &report.Report{Lookups: []report.Lookup{*l}}
	a.rules.Load().judge(r)
	*l = r.Lookups[0]
	a.m.Observe(metrics.Call{Lookup: true, Destination: l.Name, Outcome: l.Outcome.String(), Process: comm,
		Container: containerLabel(info), Count: l.Count, BlockedSeconds: l.BlockedMS / 1000,
		Failed: l.Outcome != report.Answered && l.Outcome != report.NoData, Unexpected: l.Verdict.Unexpected()})
	a.lookups.Add(1)
	a.countOutcome("lookup " + l.Outcome.String())
	return a.line(struct {
		Type string `json:"type"`
		*report.Lookup
		Container *containerJSON `json:"container,omitempty"`
	}{"lookup", l, containerOf(info)})
}

func (a *agent) countOutcome(k string) {
	a.ivMu.Lock()
	if a.ivOutcomes == nil {
		a.ivOutcomes = make(map[string]uint64)
	}
	a.ivOutcomes[k]++
	a.ivMu.Unlock()
}

func (a *agent) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("write json lines: %w", err)
	}
	if _, err := a.out.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write json lines: %w", err)
	}
	return nil
}

// background writes the interval lines and handles SIGHUP until ctx ends.
func (a *agent) background(ctx context.Context, stderr io.Writer, hup <-chan os.Signal) {
	var tick <-chan time.Time
	if a.fl.summaryEvery > 0 {
		t := time.NewTicker(a.fl.summaryEvery)
		defer t.Stop()
		tick = t.C
	}
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			a.reload(stderr)
		case now := <-tick:
			if err := a.interval(last, now); err != nil {
				fmt.Fprintf(stderr, "egress: agent: %v\n", err)
			}
			last = now
		}
	}
}

// reload swaps in freshly loaded rules and catalogs; a bad file keeps the
// old ones.
func (a *agent) reload(stderr io.Writer) {
	rs, err := a.fl.loadRules()
	if err != nil {
		a.reloadErrors.Add(1)
		fmt.Fprintf(stderr, "egress: agent: SIGHUP: keeping the rules in use: %v\n", err)
		return
	}
	a.rules.Store(rs)
	a.reloads.Add(1)
	if a.file != nil {
		if err := a.file.Reopen(); err != nil {
			fmt.Fprintf(stderr, "egress: agent: SIGHUP: %v\n", err)
		}
	}
	fmt.Fprintf(stderr, "egress: agent: SIGHUP: rules and catalog reloaded\n")
}

// interval writes what the last interval held (the "interval" line of
// docs/json-schema.md).
func (a *agent) interval(from, to time.Time) error {
	a.ivMu.Lock()
	outcomes := a.ivOutcomes
	a.ivOutcomes = nil
	a.ivMu.Unlock()
	if outcomes == nil {
		outcomes = map[string]uint64{}
	}
	open, skipped, failed, _ := a.ns.Namespaces()
	lookups, _ := a.res.Stats()
	var an report.Stats
	if p := a.an.Load(); p != nil {
		an = *p
	}
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	type totals struct {
		Connections uint64 `json:"connections"`
		Lookups     uint64 `json:"lookups"`
		Filtered    uint64 `json:"filtered"`
		Loopback    uint64 `json:"loopback"`
	}
	type health struct {
		EventsLost        uint64  `json:"events_lost"`
		NetNSCaptured     int     `json:"netns_captured"`
		NetNSSkipped      uint64  `json:"netns_skipped"`
		NetNSFailed       uint64  `json:"netns_failed"`
		ContainerLookups  uint64  `json:"container_lookups"`
		CPUUserSeconds    float64 `json:"cpu_user_seconds"`
		CPUSystemSeconds  float64 `json:"cpu_system_seconds"`
		MaxRSSBytes       int64   `json:"max_rss_bytes"`
		FlowsEvicted      uint64  `json:"flows_evicted"`
		LookupsEvicted    uint64  `json:"lookups_evicted"`
		NamesEvicted      uint64  `json:"names_evicted"`
		OutputRotations   uint64  `json:"output_rotations"`
		RulesReloads      uint64  `json:"rules_reloads"`
		RulesReloadErrors uint64  `json:"rules_reload_errors"`
	}
	return a.line(struct {
		Type     string            `json:"type"`
		From     time.Time         `json:"from"`
		To       time.Time         `json:"to"`
		Outcomes map[string]uint64 `json:"outcomes"`
		Totals   totals            `json:"totals"`
		Health   health            `json:"health"`
	}{"interval", from.UTC(), to.UTC(), outcomes,
		totals{a.conns.Load(), a.lookups.Load(), a.leftOut.Load(), a.loopback.Load()},
		health{a.tr.Lost() + a.ns.Stats().Lost, open, skipped, failed, lookups,
			tvSeconds(ru.Utime), tvSeconds(ru.Stime), ru.Maxrss * 1024, an.FlowsEvicted, an.LookupsEvicted, an.NamesEvicted,
			a.rotations(), a.reloads.Load(), a.reloadErrors.Load()}})
}

func (a *agent) rotations() uint64 {
	if a.file == nil {
		return 0
	}
	return a.file.Rotations()
}

func tvSeconds(tv unix.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// registerHealth adds the agent's own metrics.
func (a *agent) registerHealth() {
	cpu := func(user bool) func() float64 {
		return func() float64 {
			var ru unix.Rusage
			_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
			if user {
				return tvSeconds(ru.Utime)
			}
			return tvSeconds(ru.Stime)
		}
	}
	u64 := func(f func() uint64) func() float64 { return func() float64 { return float64(f()) } }
	a.m.CounterFunc("egress_agent_events_lost_total", "Kernel events (ring buffer) and DNS packets (AF_PACKET drops) lost.",
		u64(func() uint64 { return a.tr.Lost() + a.ns.Stats().Lost }))
	a.m.CounterFunc("egress_agent_dns_packets_total", "DNS and ICMP packets captured in all network namespaces.",
		u64(func() uint64 { return a.ns.Stats().Packets }))
	a.m.CounterFunc("egress_agent_dns_duplicates_total", "Packets left out as copies of one seen in another captured namespace.",
		u64(a.ns.Duplicates))
	a.m.GaugeFunc("egress_agent_netns_captured", "Network namespaces whose DNS is captured now.",
		func() float64 { n, _, _, _ := a.ns.Namespaces(); return float64(n) })
	a.m.CounterFunc("egress_agent_netns_skipped_total", "Sightings of network namespaces past --max-netns (not captured).",
		func() float64 { _, s, _, _ := a.ns.Namespaces(); return float64(s) })
	a.m.CounterFunc("egress_agent_netns_failed_total", "Network namespace captures that could not be opened.",
		func() float64 { _, _, f, _ := a.ns.Namespaces(); return float64(f) })
	a.m.CounterFunc("egress_agent_container_cache_evictions_total", "Times the process-to-container cache was full and started over.",
		func() float64 { _, n := a.res.Stats(); return float64(n) })
	anStat := func(f func(*report.Stats) uint64) func() float64 {
		return func() float64 {
			if st := a.an.Load(); st != nil {
				return float64(f(st))
			}
			return 0
		}
	}
	a.m.CounterFunc("egress_agent_flows_evicted_total", "TCP flows evicted from the analyzer's full flow table (65536) before they settled.",
		anStat(func(s *report.Stats) uint64 { return s.FlowsEvicted }))
	a.m.CounterFunc("egress_agent_lookups_evicted_total", "DNS lookups evicted from the analyzer's full lookup table (16384) before their answer.",
		anStat(func(s *report.Stats) uint64 { return s.LookupsEvicted }))
	a.m.CounterFunc("egress_agent_names_evicted_total", "Address-to-name entries evicted from the analyzer's full name table (65536).",
		anStat(func(s *report.Stats) uint64 { return s.NamesEvicted }))
	a.m.CounterFunc("egress_agent_records_folded_total", "Calls folded into an earlier record of the final summary (each is still written and counted).",
		anStat(func(s *report.Stats) uint64 { return s.RecordsFolded }))
	a.m.CounterFunc("egress_agent_calls_filtered_total", "Settled calls left out by --cgroup, --container or --comm.", u64(a.leftOut.Load))
	a.m.CounterFunc("egress_agent_loopback_calls_total", "Settled calls to the host itself, left out without --loopback.", u64(a.loopback.Load))
	a.m.CounterFunc("egress_agent_rules_reloads_total", "Successful SIGHUP reloads of the rules and catalogs.", u64(a.reloads.Load))
	a.m.CounterFunc("egress_agent_rules_reload_errors_total", "SIGHUP reloads that failed (the old rules stay).", u64(a.reloadErrors.Load))
	a.m.CounterFunc("egress_agent_cpu_user_seconds_total", "User CPU seconds the agent used.", cpu(true))
	a.m.CounterFunc("egress_agent_cpu_system_seconds_total", "System CPU seconds the agent used (the kernel programs' cost is not in it: it is charged to the processes they run in).", cpu(false))
}

// lockedWriter serialises whole writes (lines) from the pipeline and the
// interval ticker.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// containerSource looks up the container of each process the kernel
// reports as soon as its event arrives (at connect time, while the
// process is surely alive), so a short-lived process's call is still
// attributed when it settles.
type containerSource struct {
	capture.Source
	res *containers.Resolver
}

func (s containerSource) Run(ctx context.Context, sink capture.Sink) error {
	return s.Source.Run(ctx, capture.SinkFunc(func(o event.Observation) {
		if e, ok := o.(*event.Sock); ok && e.Proc != nil && e.Proc.PID > 0 {
			s.res.ForProcess(e.Proc.PID, e.Proc.Comm)
		}
		sink.Observe(o)
	}))
}

func readComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(b), "\n")
}
