package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"

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
	catalogs  []string
	noCatalog bool
	appFrames string // --app-frames: the regexp for "the application's own code" in stacks
}

func (o *outputFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.format, "format", "o", "table", "output format: table, json, jsonl (one line per call as it settles, then a summary), junit (one test case per destination), markdown or html (a timeline)")
	f.StringSliceVar(&o.failOn, "fail-on", nil, "exit 1 when a call has one of these outcomes: timeout, pending, refused, rejected, aborted, nxdomain, servfail, failed (all of those)")
	f.BoolVar(&o.all, "all", false, "table: list every call (by default successful calls beyond 40 are summarised)")
	f.StringVar(&o.rules, "rules", "", "allowlist (YAML, docs/rules.md): calls it does not allow are unexpected (--fail-on unexpected)")
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
	if _, err := pipeline.ParseFailOn(o.failOn, o.rules != ""); err != nil {
		return usageErr("%v", err)
	}
	return nil
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
	if cfg.FailOn, err = pipeline.ParseFailOn(o.failOn, o.rules != ""); err != nil {
		return usageErr("%v", err)
	}
	if o.rules != "" {
		if cfg.Policy, err = rules.Load(o.rules); err != nil {
			return usageErr("%v", err)
		}
	}
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
	// cmd is egress run's command: its status, and whether unexpected
	// destinations fail the check (enforce mode).
	cmdName string
	cmdCode int
	enforce bool
	// stopped: egress was interrupted and stopped the command (run).
	stopped bool
	// failLost: lost events fail the check (run: enforce mode, --fail-on lost).
	failLost bool
}

// exit is the one exit decision of every command, in this order: egress
// was interrupted and stopped the command (130), a source or the tee
// failed (2), the command run failed (its status), the policy was broken
// in enforce mode (3), --fail-on matched (1), events were lost and that
// fails the check (1).
func exit(res *pipeline.Result, end ending) error {
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
		return &exitError{code: end.cmdCode, err: fmt.Errorf("%s exited with status %d", end.cmdName, end.cmdCode)}
	case res.Unexpected > 0 && end.enforce:
		return &exitError{code: ExitUnexpected, err: fmt.Errorf("%d unexpected destination(s) (--mode audit reports without failing)", res.Unexpected)}
	case len(res.Findings) > 0:
		return &exitError{code: ExitFindings, err: errors.New(pipeline.Summarise(res.Findings))}
	case end.failLost && res.Report.Stats.EventsLost > 0:
		return &exitError{code: ExitFindings, err: fmt.Errorf("the trace is incomplete: %d kernel event(s) lost (--mode audit reports without failing)", res.Report.Stats.EventsLost)}
	}
	return nil
}

// ciOutputs adds what a CI runner shows next to the report: on GitHub
// Actions (GITHUB_ACTIONS=true) error and warning annotations on stderr,
// and a Markdown summary appended to $GITHUB_STEP_SUMMARY when it is set.
// A summary that cannot be written is a warning, not a failed check.
func ciOutputs(stderr io.Writer, r *report.Report) {
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
	if err := report.WriteMarkdown(&b, r); err != nil {
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
