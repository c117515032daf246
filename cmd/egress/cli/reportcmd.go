package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/egress-dev/egress/baseline"
)

// newReportCmd re-renders a JSON report in another format: one run with
// --format json keeps the baseline for next time, and its JUnit or
// Markdown comes from the same verdicts.
func newReportCmd(e *env) *cobra.Command {
	var format string
	var all bool
	cmd := &cobra.Command{
		Use:   "report REPORT.json",
		Short: "Write a JSON report again in another format (junit, markdown, table, html, json)",
		Long: `report reads the JSON report of egress run, watch or replay (--format json) and
writes it in another format, with the verdicts it was judged with (the same
failures, the same check). It exits 0; the run that made the report gave the
exit code.`,
		Example: `  sudo egress run --baseline main.json --format json --report egress.json -- npm test
  egress report egress.json --format junit > egress.xml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := outputFlags{format: format, all: all}
			if err := o.validate(); err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			defer f.Close()
			r, err := baseline.ReadReport(args[0], f)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			if err := o.write(e.stdout, r); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", "table", "output format: table, json, junit, markdown or html")
	cmd.Flags().BoolVar(&all, "all", false, "table: list every call")
	return cmd
}
