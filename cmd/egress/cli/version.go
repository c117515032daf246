package cli

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionText says which egress this is, for bug reports: the module
// version and the VCS revision the binary was built from. `go build` in a
// git checkout stamps the revision; `go run`, `go test` and builds outside
// a checkout may not, and then it says so.
func versionText(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "egress (no build information)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "egress %s", version)
	switch {
	case rev != "":
		fmt.Fprintf(&b, " revision %s", rev)
		if when != "" {
			fmt.Fprintf(&b, " (%s)", when)
		}
		if modified {
			b.WriteString(" with local changes")
		}
	default:
		b.WriteString(" revision unknown (built without VCS information)")
	}
	if bi.GoVersion != "" {
		fmt.Fprintf(&b, ", %s", bi.GoVersion)
	}
	return b.String()
}

func buildVersion() string { return versionText(debug.ReadBuildInfo()) }

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print egress's module version and the VCS revision it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(e.stdout, buildVersion())
			return err
		},
	}
}
