package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/pipeline"
	"github.com/egress-dev/egress/report"
)

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
	cfg := pipeline.Config{Source: name}
	var err error
	if cfg.Analyze, err = replayConfig(fl); err != nil {
		return err
	}
	if err := fl.out.configure(&cfg, e.stdout); err != nil {
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
	// A file written by `egress watch --write` (or run) carries the live
	// window: replaying it covers the same span, so both give the same report.
	if w, ok := rd.Watch(); ok && fl.from == "" && fl.to == "" {
		cfg.Analyze.From, cfg.Analyze.To = w.From, w.To
		if w.LocalAny && fl.local == "" {
			cfg.Analyze.LocalAny = true
		}
		cfg.Steering.Port, cfg.LookupsAreCalls = w.ProxyPort, w.LookupsAreCalls
		// What the live run said beyond its records, said again.
		cfg.Finish = func(r *report.Report) {
			for _, h := range w.Hints {
				r.Hints = append(r.Hints, report.Hint{Kind: h.Kind, Subject: h.Subject, Text: h.Text})
			}
		}
	}
	cfg.Sources, cfg.Backend = []capture.Source{rd}, rd.Format()

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
	stopProgress := startProgress(e.stderr, name, rd, fl.progress)
	res := pipeline.Run(ctx, cfg)
	stopProgress()
	if fl.memProfile != "" {
		if err := writeHeapProfile(fl.memProfile); err != nil {
			return usageErr("--memprofile: %v", err)
		}
	}
	if res.WindowErr != nil && res.SourceErr == nil {
		return usageErr("%v", res.WindowErr)
	}
	ciOutputs(e.stderr, res.Report, "")
	if err := fl.out.write(e.stdout, res.Report); err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	return exit(e.stderr, res, ending{interrupted: "interrupted: the report covers what was read"})
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
