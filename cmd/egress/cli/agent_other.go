//go:build !linux

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newAgentCmd on systems other than Linux says why agent is missing.
func newAgentCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "agent",
		Short: "Watch every process on the host: JSON lines and Prometheus metrics (Linux only)",
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: ExitUsage, err: errors.New("agent needs Linux (eBPF tracepoints and AF_PACKET)")}
		},
		DisableFlagParsing: true,
	}
}
