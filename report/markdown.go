package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes r as GitHub-flavoured Markdown: the headline, the
// outbound destinations (unexpected ones first) and the lookups that did
// not get an answer. It is the step summary of a CI job.
func WriteMarkdown(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	ds := Destinations(r)
	unexpected, failed := 0, 0
	for _, d := range ds {
		if d.Unexpected {
			unexpected++
		}
		if d.Failed() {
			failed++
		}
	}
	status := "no unexpected outbound calls"
	switch {
	case unexpected > 0:
		status = fmt.Sprintf("**%d unexpected destination(s)**", unexpected)
	case r.Connections != nil && !anyVerdict(r):
		status = "no policy applied (--rules)"
	}
	ew.printf("### egress: %s\n\n", status)
	if r.Headline != "" {
		ew.printf("%s\n\n", mdText(r.Headline))
	}
	ew.printf("Source: %s · %d destination(s): %d unexpected, %d with failed calls\n\n", mdCode(r.Source), len(ds), unexpected, failed)
	if len(ds) > 0 {
		ew.printf("| | destination | process | outcome | calls | blocked | verdict |\n")
		ew.printf("|---|---|---|---|---:|---:|---|\n")
		for _, d := range ds {
			mark := "✅"
			switch {
			case d.Unexpected:
				mark = "❌"
			case d.Failed():
				mark = "⚠️"
			}
			verdict := "expected"
			if d.Unexpected {
				verdict = "unexpected"
			}
			if d.Rule != "" {
				verdict += " (" + mdCode(d.Rule) + ")"
			}
			if d.Catalog != "" {
				verdict += "<br>known phone-home: " + mdText(d.Catalog)
			}
			outcome := mdText(d.OutcomeText())
			if len(d.Reasons) > 0 {
				outcome += " (" + mdText(strings.Join(d.Reasons, ", ")) + ")"
			}
			ew.printf("| %s | %s | %s | %s | %d | %s | %s |\n", mark, mdCode(d.Target()+"/"+d.Proto),
				mdText(orDash(strings.Join(d.Processes, ", "))), outcome, d.Calls, durText(d.BlockedMS), verdict)
		}
		ew.printf("\n")
	}
	var bad []Lookup
	for _, l := range r.Lookups {
		if l.Outcome != Answered && l.Outcome != NoData {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		ew.printf("| lookup | type | process | outcome | blocked |\n|---|---|---|---|---:|\n")
		for _, l := range bad {
			ew.printf("| %s | %s | %s | %s | %s |\n", mdCode(l.Name), mdText(l.QType), mdText(proc(l.PID, l.Comm)), mdText(l.Outcome), durText(l.BlockedMS))
		}
		ew.printf("\n")
	}
	for _, h := range r.Hints {
		ew.printf("- %s: %s\n", mdText(h.Subject), mdText(h.Text))
	}
	for _, e := range r.Errors {
		ew.printf("- **error:** %s\n", mdText(e))
	}
	if ew.err != nil {
		return fmt.Errorf("write markdown report: %w", ew.err)
	}
	return nil
}

func anyVerdict(r *Report) bool {
	for _, c := range r.Connections {
		if c.Verdict != nil && c.Verdict.Rule != "" {
			return true
		}
	}
	return false
}

// mdText escapes what Markdown or HTML would interpret in text that came
// from the network (names, process names), after Safe has escaped control
// characters, so a hostile name cannot forge a link or break the table.
func mdText(s string) string {
	s = Safe(s)
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '|', '&':
			fmt.Fprintf(&b, "&#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode writes s as inline code; backticks cannot end the span early.
func mdCode(s string) string {
	s = Safe(s)
	s = strings.NewReplacer("`", "'", "|", "\\|").Replace(s)
	return "`" + s + "`"
}
