package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/egress-dev/egress/report"
)

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
