package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/baseline"
	"github.com/egress-dev/egress/pipeline"
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
	f.StringVarP(&o.format, "format", "o", "table", "output format: table, json, jsonl (one line per call as it settles, then a summary), junit (one test case per destination), markdown or html (a timeline)")
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

func (o *outputFlags) validate() error {
	if _, err := regexp.Compile(o.appFrames); err != nil {
		return usageErr("--app-frames: %v", err)
	}
	switch o.format {
	case "table", "json", "jsonl", "junit", "markdown", "html":
	default:
		return usageErr("unknown --format %q: use table, json, jsonl, junit, markdown or html", o.format)
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

var failOutcomes = map[string][]report.Outcome{
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

// criteria is what fails the check (report.Judge): unexpected calls when
// enforce, and the outcomes --fail-on names.
func (o *outputFlags) criteria(enforce bool) *report.Criteria {
	var outcomes []report.Outcome
	for _, f := range o.failOn {
		for _, out := range failOutcomes[f] {
			if !slices.Contains(outcomes, out) {
				outcomes = append(outcomes, out)
			}
		}
	}
	return &report.Criteria{Rules: o.rules, Baseline: o.baseline, Enforce: enforce, FailOn: outcomes}
}

// failsOnUnexpected says whether --fail-on names unexpected calls (replay
// and watch; egress run fails on them in enforce mode).
func (o *outputFlags) failsOnUnexpected() bool { return slices.Contains(o.failOn, "unexpected") }

// failedErr is the error of a check that failed: how many destinations
// and which.
func failedErr(code int, failing []*report.Destination) error {
	return &exitError{code: code, err: fmt.Errorf("%d destination(s) fail the check: %s", len(failing), report.FailureSummary(failing, 5))}
}

// configure loads the policy and the catalog and sets what the pipeline
// needs of these flags; out is where the report goes (--format jsonl
// streams calls to it as they settle).
func (o *outputFlags) configure(cfg *pipeline.Config, out io.Writer) error {
	if o.format == "jsonl" {
		cfg.Stream = report.NewJSONL(out)
	}
	cfg.Analyze.AppFrames = o.appFramesRe()
	var err error
	if cfg.Policy, err = o.policy(); err != nil {
		return err
	}
	cfg.Judge = o.criteria(o.failsOnUnexpected())
	if !o.noCatalog {
		if cfg.Catalog, err = rules.LoadCatalogWith(o.catalogs...); err != nil {
			return usageErr("%v", err)
		}
	}
	return nil
}

// write prints the report in the chosen format.
func (o *outputFlags) write(w io.Writer, r *report.Report) error {
	switch o.format {
	case "json":
		return report.WriteJSON(w, r)
	case "jsonl":
		// The calls went out as they settled.
		return report.NewJSONL(w).Summary(r)
	case "junit":
		return report.WriteJUnit(w, r)
	case "markdown":
		return report.WriteMarkdown(w, r)
	case "html":
		return report.WriteHTML(w, r)
	}
	return report.WriteTable(w, r, report.TableOptions{All: o.all})
}

// ending is what a command adds to the exit decision.
type ending struct {
	// interrupted is the message for a source cancelled by Ctrl-C (replay).
	interrupted string
	// sourceFailed wraps the error a source stopped with.
	sourceFailed func(error) error
	// findings is the code of a failed check (1; egress run: 4).
	findings int
	// cmd is egress run's command: its status (passed on unchanged), and
	// whether unexpected destinations fail the check (enforce mode: 3).
	cmdName string
	cmdCode int
	enforce bool
	// stopped: egress was interrupted and stopped the command (run).
	stopped bool
	// failLost: lost events fail the check (run: enforce mode, --fail-on lost).
	failLost bool
}

// exit is the one exit decision of every command, in this order: egress
// was interrupted and stopped the command (130), a source, the tee or the
// stream failed (2), the command run failed (its status), the policy was
// broken in enforce mode (3), the check failed (1; run: 4), events were
// lost and that fails the check (1; run: 4). The verdicts report.Judge set
// decide what fails.
func exit(stderr io.Writer, res *pipeline.Result, end ending) error {
	findings := end.findings
	if findings == 0 {
		findings = ExitFindings
	}
	policyFail := slices.ContainsFunc(res.Failing, func(d *report.Destination) bool {
		return d.Fails == report.FailBlocked || d.Fails == report.FailUnexpected
	})
	switch {
	case end.stopped:
		return &exitError{code: ExitStopped, err: fmt.Errorf("interrupted: egress stopped %s (SIGTERM passed on)", end.cmdName)}
	case res.SourceErr != nil && errors.Is(res.SourceErr, context.Canceled) && end.interrupted != "":
		return &exitError{code: ExitUsage, err: errors.New(end.interrupted)}
	case res.SourceErr != nil:
		err := res.SourceErr
		if end.sourceFailed != nil {
			err = end.sourceFailed(err)
		}
		return &exitError{code: ExitUsage, err: err}
	case res.TeeErr != nil:
		return &exitError{code: ExitUsage, err: res.TeeErr}
	case res.StreamErr != nil:
		return &exitError{code: ExitUsage, err: res.StreamErr}
	case end.cmdCode != 0:
		if len(res.Failing) > 0 {
			fmt.Fprintf(stderr, "egress: %d destination(s) fail the check: %s\n", len(res.Failing), report.FailureSummary(res.Failing, 5))
		}
		return &exitError{code: end.cmdCode, err: fmt.Errorf("%s exited with status %d", end.cmdName, end.cmdCode), command: true}
	case policyFail && end.enforce:
		return failedErr(ExitUnexpected, res.Failing)
	case len(res.Failing) > 0:
		return failedErr(findings, res.Failing)
	case end.failLost && res.Report.Stats.EventsLost > 0:
		return &exitError{code: findings, err: fmt.Errorf("the trace is incomplete: %d kernel event(s) lost (--mode audit reports without failing)", res.Report.Stats.EventsLost)}
	}
	return nil
}

// maxSummaryRows bounds the destinations of the step summary: a busy job's
// summary stays readable, the full report has the rest.
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
