package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/baseline"
	"github.com/egress-dev/egress/report"
)

func newDiffCmd(e *env) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "diff OLD.json NEW.json",
		Short: "List the destinations new since a baseline report, gone since, or with a changed outcome",
		Long: `diff compares two JSON reports of egress run, watch or replay (--format json): the
destinations (name where known, else address; port; protocol; process) that are
new in NEW, gone since OLD, or whose outcomes changed. Names that churn match as
a family (numbered shards, CDN edge names: docs/ci.md).

Exit codes: 1 when something is new in NEW, 0 otherwise, 2 when a report
cannot be read.`,
		Example: `  egress run --format json --report new.json -- npm test
  egress diff main.json new.json
  egress diff --format json main.json new.json | jq '.changes[] | select(.kind == "new")'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiff(e, args[0], args[1], format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", "text", "output format: text or json")
	return cmd
}

type diffChange struct {
	Kind        string   `json:"kind"`
	Destination string   `json:"destination"`
	Name        string   `json:"name"`
	Port        uint16   `json:"port"`
	Proto       string   `json:"proto"`
	Process     string   `json:"process"`
	OldOutcomes []string `json:"old_outcomes"`
	NewOutcomes []string `json:"new_outcomes"`
}

type diffDoc struct {
	Old     string       `json:"old"`
	New     string       `json:"new"`
	Counts  diffCounts   `json:"counts"`
	Changes []diffChange `json:"changes"`
}

type diffCounts struct {
	New             int `json:"new"`
	Gone            int `json:"gone"`
	Changed         int `json:"changed"`
	OldDestinations int `json:"old_destinations"`
	NewDestinations int `json:"new_destinations"`
}

func runDiff(e *env, oldPath, newPath, format string) error {
	if format != "text" && format != "json" {
		return usageErr("unknown --format %q: use text or json", format)
	}
	old, err := baseline.Load(oldPath)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	cur, err := baseline.Load(newPath)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	changes := baseline.Diff(old, cur)
	doc := diffDoc{Old: oldPath, New: newPath, Changes: []diffChange{},
		Counts: diffCounts{OldDestinations: len(old.Entries()), NewDestinations: len(cur.Entries())}}
	for _, c := range changes {
		switch c.Kind {
		case baseline.New:
			doc.Counts.New++
		case baseline.Gone:
			doc.Counts.Gone++
		case baseline.Changed:
			doc.Counts.Changed++
		}
		doc.Changes = append(doc.Changes, diffChange{Kind: c.Kind, Destination: c.Key.String(), Name: c.Key.Name, Port: c.Key.Port,
			Proto: c.Key.Proto, Process: c.Key.Process, OldOutcomes: orEmpty(c.Old), NewOutcomes: orEmpty(c.New)})
	}
	if format == "json" {
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(e.stdout, "%s\n", b); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
		for _, c := range doc.Changes {
			outcome := strings.Join(c.NewOutcomes, ", ")
			switch c.Kind {
			case baseline.Gone:
				outcome = strings.Join(c.OldOutcomes, ", ")
			case baseline.Changed:
				outcome = strings.Join(c.OldOutcomes, ", ") + " -> " + outcome
			}
			proc := report.Safe(c.Process)
			if proc == "" {
				proc = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Kind, c.Destination, proc, outcome)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(e.stdout, "%d new, %d changed, %d gone (%s: %d destinations, %s: %d)\n",
			doc.Counts.New, doc.Counts.Changed, doc.Counts.Gone, report.Safe(oldPath), doc.Counts.OldDestinations,
			report.Safe(newPath), doc.Counts.NewDestinations); err != nil {
			return err
		}
	}
	if doc.Counts.New > 0 {
		return &exitError{code: ExitFindings}
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
