package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/baseline"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/pipeline"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

func newRulesCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check an allowlist, or write a starter one from what an app did",
		Long: `rules works on the YAML allowlists that --rules reads (docs/rules.md).

  egress rules check FILE                   validate a policy
  egress rules suggest REPORT.json|CAPTURE  write a starter policy from observed calls`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy: exit 0 with a summary, or 2 with every mistake as FILE:LINE",
		Example: `  egress rules check egress.yaml
  egress rules check testdata/rules/allow-vendor.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rulesCheck(e, args[0])
		},
	})
	var suggestBaseline string
	suggest := &cobra.Command{
		Use:   "suggest [--baseline OLD.json] (REPORT.json | CAPTURE)",
		Short: "Write a starter allowlist that allows exactly the calls seen in a JSON report or a capture",
		Long: `suggest reads the JSON report of egress run, watch or replay (--format json),
or a capture (pcap, pcapng, .gz; - for stdin), and writes to stdout a policy with
one entry per exact host name (or address without a name), protocol and process,
listing the ports seen. Review it before use: everything the app did is in it.
With --baseline, it starts from the destinations of an earlier JSON report and
adds those of this one: a policy for both.`,
		Example: `  egress run --format json -- npm test > run.json; egress rules suggest run.json > egress.yaml
  egress rules suggest testdata/captures/story-drop-path.pcap
  egress rules suggest --baseline release.json run.json > egress.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rulesSuggest(cmd.Context(), e, args[0], suggestBaseline)
		},
	}
	suggest.Flags().StringVar(&suggestBaseline, "baseline", "", "an earlier JSON report whose destinations the policy allows too")
	cmd.AddCommand(suggest)
	return cmd
}

func rulesCheck(e *env, path string) error {
	pol, err := rules.Load(path)
	if err != nil {
		var errs rules.Errors
		if errors.As(err, &errs) {
			for _, pe := range errs {
				fmt.Fprintln(e.stderr, pe.Error())
			}
			return &exitError{code: ExitUsage, err: fmt.Errorf("%s: %d mistake(s)", path, len(errs))}
		}
		return &exitError{code: ExitUsage, err: err}
	}
	allow, deny := pol.Counts()
	loopback, resolvers := pol.Defaults()
	fmt.Fprintf(e.stdout, "%s: valid: %d allow, %d deny entries; loopback %s, resolvers %s\n",
		path, allow, deny, allowedText(loopback), allowedText(resolvers))
	return nil
}

func allowedText(b bool) string {
	if b {
		return "allowed"
	}
	return "not allowed"
}

func rulesSuggest(ctx context.Context, e *env, name, baselinePath string) error {
	var ds []rules.Dest
	if baselinePath != "" {
		f, err := os.Open(baselinePath)
		if err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("--baseline: %w", err)}
		}
		old, err := baseline.ReadReport(baselinePath, f)
		f.Close()
		if err != nil {
			return &exitError{code: ExitUsage, err: fmt.Errorf("--baseline: %w", err)}
		}
		ds = dests(old)
	}
	r, err := readReportOrCapture(ctx, e, name)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	_, err = e.stdout.Write(rules.Suggest(append(ds, dests(r)...)))
	return err
}

// readReportOrCapture reads a JSON report, or analyses a capture the way
// replay does with its defaults. JSON is told apart by its first byte.
func readReportOrCapture(ctx context.Context, e *env, name string) (*report.Report, error) {
	var in *bufio.Reader
	if name == "-" {
		in = bufio.NewReader(e.stdin)
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = bufio.NewReader(f)
	}
	head, _ := in.Peek(64)
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var r report.Report
		if err := json.NewDecoder(in).Decode(&r); err != nil {
			return nil, fmt.Errorf("reading JSON report %s: %w", name, err)
		}
		return &r, nil
	}
	rd, err := pcapfile.NewReader(name, in)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	// The same window and scope as replay gives, for files egress wrote.
	cfg := pipeline.Config{Sources: []capture.Source{rd}}
	if w, ok := rd.Watch(); ok {
		cfg.Analyze.From, cfg.Analyze.To, cfg.Analyze.LocalAny = w.From, w.To, w.LocalAny
		cfg.Steering.Port, cfg.LookupsAreCalls = w.ProxyPort, w.LookupsAreCalls
	}
	res := pipeline.Run(ctx, cfg)
	if res.SourceErr != nil {
		return nil, fmt.Errorf("reading %s: %w", name, res.SourceErr)
	}
	return res.Report, nil
}

// dests turns a report's outbound connections into the rules' view of
// them, marking the DNS servers the app used as resolvers.
func dests(r *report.Report) []rules.Dest {
	resolvers := rules.Resolvers(r)
	var ds []rules.Dest
	for i := range r.Connections {
		if c := &r.Connections[i]; !c.Loopback {
			ds = append(ds, rules.DestOf(c, resolvers))
		}
	}
	return ds
}
