package report

import (
	"fmt"
	"io"
	"strings"
)

// MaxAnnotations is how many destinations get an annotation of their own;
// GitHub shows only a handful per step, so the rest are one line.
const MaxAnnotations = 10

// WriteGitHubAnnotations writes GitHub Actions workflow commands to w (the
// job's stderr): an ::error for each destination that fails the check
// (the calls behind the exit code), a ::warning for each unexpected one
// that does not (audit mode) and each one whose calls failed (timeouts,
// refusals, failed lookups). The MaxAnnotations worst are written, then
// one line counts the rest.
func WriteGitHubAnnotations(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	var shown, rest []*Destination
	for _, d := range Destinations(r) {
		if d.Fails == FailNone && !d.Unexpected && !d.Failed() {
			continue
		}
		if len(shown) < MaxAnnotations {
			shown = append(shown, d)
		} else {
			rest = append(rest, d)
		}
	}
	for _, d := range shown {
		level, title := "warning", "egress: failed "
		switch {
		case d.Fails != FailNone:
			level, title = "error", "egress: "
			if d.Unexpected {
				title += "unexpected "
			} else {
				title += "failed "
			}
		case d.Unexpected:
			title = "egress: unexpected "
		}
		if d.Proto == "dns" {
			title += "lookup of " + d.Target()
		} else {
			title += "call to " + d.Target()
		}
		ew.printf("::%s title=%s::%s\n", level, ghProperty(title), ghData(d.describe()))
	}
	if len(rest) > 0 {
		level, failing, unexpected := "warning", 0, 0
		for _, d := range rest {
			if d.Fails != FailNone {
				level = "error"
				failing++
			}
			if d.Unexpected {
				unexpected++
			}
		}
		ew.printf("::%s title=%s::%s\n", level, ghProperty(fmt.Sprintf("egress: %d more destinations", len(rest))),
			ghData(fmt.Sprintf("and %d more destination(s) with findings (%d failing the check, %d unexpected): %s; the step summary and the report list them",
				len(rest), failing, unexpected, FailureSummary(rest, 5))))
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
