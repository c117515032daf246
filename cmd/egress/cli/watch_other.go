//go:build !linux

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newWatchCmd on systems other than Linux says why watch is missing, so
// the command line is the same everywhere.
func newWatchCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "watch --pid PID",
		Short: "Watch a running process's outbound calls live (Linux only)",
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: ExitUsage, err: errors.New("watch needs Linux (eBPF tracepoints and AF_PACKET); record with tcpdump and use replay")}
		},
		DisableFlagParsing: true,
	}
}
