//go:build !linux

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newRunCmd on systems other than Linux says why run is missing, so the
// command line is the same everywhere.
func newRunCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command in its own cgroup and report its outbound calls (Linux only)",
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: ExitUsage, err: errors.New("run needs Linux (cgroup v2 and eBPF); record with tcpdump and use replay")}
		},
		DisableFlagParsing: true,
	}
}
