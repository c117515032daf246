package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteGitHubAnnotations writes GitHub Actions workflow commands to w (the
// job's stderr or stdout): an ::error for each unexpected destination and a
// ::warning for each expected one whose calls failed (timeout, refused,
// rejected...), so they show on the run's summary page.
func WriteGitHubAnnotations(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	for _, d := range Destinations(r) {
		switch {
		case d.Unexpected:
			ew.printf("::error title=%s::%s\n", ghProperty("egress: unexpected call to "+d.Target()), ghData(d.describe()))
		case d.Failed():
			ew.printf("::warning title=%s::%s\n", ghProperty("egress: failed call to "+d.Target()), ghData(d.describe()))
		}
	}
	for _, l := range r.Lookups {
		if l.Outcome != Answered && l.Outcome != NoData {
			ew.printf("::warning title=%s::%s\n", ghProperty("egress: failed lookup of "+Safe(l.Name)),
				ghData(fmt.Sprintf("lookup %s %s by %s: %s, blocked %s", Safe(l.Name), l.QType, proc(l.PID, l.Comm), l.Outcome, durText(l.BlockedMS))))
		}
	}
	for _, e := range r.Errors {
		ew.printf("::error title=egress: partial report::%s\n", ghData(Safe(e)))
	}
	if ew.err != nil {
		return fmt.Errorf("write github annotations: %w", ew.err)
	}
	return nil
}

// ghData escapes a workflow command's message as the runner expects.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a workflow command's property value.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
