package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes r as GitHub-flavoured Markdown: the verdict, the
// headline and every destination (failing ones first) with the same
// verdict the exit code and the other formats give.
func WriteMarkdown(w io.Writer, r *Report) error {
	return writeMarkdown(w, r, SummaryOptions{})
}

// SummaryOptions bounds a Markdown summary for busy jobs.
type SummaryOptions struct {
	// MaxRows bounds the destinations listed (0: all). Failing ones come
	// first, so none is left out before a passing one is.
	MaxRows int
	// Detail names the file with the full report, said where rows are left
	// out.
	Detail string
}

// WriteSummary writes the bounded Markdown of a CI step summary: the
// totals, the verdict, then at most opt.MaxRows destinations, worst first,
// and a line naming opt.Detail for the rest.
func WriteSummary(w io.Writer, r *Report, opt SummaryOptions) error {
	return writeMarkdown(w, r, opt)
}

func writeMarkdown(w io.Writer, r *Report, opt SummaryOptions) error {
	ew := &errWriter{w: w}
	ds := Destinations(r)
	failing, unexpected, failed := 0, 0, 0
	for _, d := range ds {
		if d.Fails != FailNone {
			failing++
		}
		if d.Unexpected {
			unexpected++
		}
		if d.Failed() {
			failed++
		}
	}
	c := r.Check
	var status string
	switch {
	case failing > 0:
		status = fmt.Sprintf("**%d destination(s) fail the check**", failing)
	case c != nil && unexpected > 0:
		status = fmt.Sprintf("%d unexpected destination(s), not failing (%s mode)", unexpected, c.Mode)
	case c != nil && (c.Rules != "" || c.Baseline != ""):
		status = "no unexpected outbound calls"
	case c != nil:
		status = "nothing --fail-on names"
	default:
		status = fmt.Sprintf("%d destination(s); no policy applied (--rules judges them)", len(ds))
	}
	ew.printf("### egress: %s\n\n", status)
	if r.Headline != "" {
		ew.printf("%s\n\n", mdText(r.Headline))
	}
	ew.printf("Source: %s · %d destination(s): %d failing the check, %d unexpected, %d with failed calls\n\n",
		mdCode(r.Source), len(ds), failing, unexpected, failed)
	if c != nil {
		ew.printf("Check: %s\n\n", mdText(strings.TrimPrefix(checkText(c), "check: ")))
	}
	rows := ds
	if opt.MaxRows > 0 && len(rows) > opt.MaxRows {
		rows = boundedRows(ds, opt.MaxRows)
	}
	if len(rows) > 0 {
		if c != nil {
			ew.printf("| | destination | process | outcome | calls | waited | verdict |\n")
			ew.printf("|---|---|---|---|---:|---:|---|\n")
		} else {
			ew.printf("| | destination | process | outcome | calls | waited | known phone-home |\n")
			ew.printf("|---|---|---|---|---:|---:|---|\n")
		}
		for _, d := range rows {
			mark := "✅"
			switch {
			case d.Fails != FailNone:
				mark = "❌"
			case d.Unexpected || d.Failed():
				mark = "⚠️"
			}
			verdict := mdText(d.VerdictText())
			if d.Catalog != "" {
				if verdict != "" {
					verdict += "<br>"
				}
				verdict += "known phone-home: " + mdText(d.Catalog)
			}
			outcome := mdText(d.OutcomeText())
			if d.RefusedBy == "" && len(d.Reasons) > 0 {
				outcome += " (" + mdText(strings.Join(d.Reasons, ", ")) + ")"
			}
			ew.printf("| %s | %s | %s | %s | %d | %s | %s |\n", mark, mdCode(d.ID()),
				mdText(orDash(strings.Join(d.Processes, ", "))), outcome, d.Calls, durText(d.BlockedMS), orDash(verdict))
		}
		ew.printf("\n")
	}
	if left := len(ds) - len(rows); left > 0 {
		lf := failing
		for _, d := range rows {
			if d.Fails != FailNone {
				lf--
			}
		}
		ew.printf("… and %d more destination(s) (%d of them failing the check)", left, lf)
		if opt.Detail != "" {
			ew.printf(": the full report is %s", mdCode(opt.Detail))
		}
		ew.printf(".\n\n")
	}
	hints := r.Hints
	if opt.MaxRows > 0 && len(hints) > maxSummaryHints {
		hints = hints[:maxSummaryHints]
	}
	for _, h := range hints {
		ew.printf("- %s: %s\n", mdText(h.Subject), mdText(h.Text))
	}
	if len(hints) < len(r.Hints) {
		ew.printf("- … and %d more hints (in the full report)\n", len(r.Hints)-len(hints))
	}
	for _, e := range r.Errors {
		ew.printf("- **error:** %s\n", mdText(e))
	}
	if ew.err != nil {
		return fmt.Errorf("write markdown report: %w", ew.err)
	}
	return nil
}

// maxSummaryHints bounds the hints of a bounded summary.
const maxSummaryHints = 5

// boundedRows picks at most max of ds (sorted worst first) for a summary:
// the failing and unexpected ones first, keeping up to five rows for the
// longest waits among the calls that failed but pass the check (timeouts
// of allowed calls), so a busy job's summary shows both.
func boundedRows(ds []*Destination, max int) []*Destination {
	var flagged, failedOnly []*Destination
	for _, d := range ds {
		switch r := d.rank(); {
		case r <= 3:
			flagged = append(flagged, d)
		case r == 4:
			failedOnly = append(failedOnly, d)
		}
	}
	keep := min(5, len(failedOnly))
	rows := flagged[:min(len(flagged), max-keep)]
	return append(rows, failedOnly[:min(len(failedOnly), max-len(rows))]...)
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
