// Package cli is egress's command line: flags, help and exit codes; package
// pipeline does the wiring. Main takes its streams as
// arguments and returns the exit code, so tests run it in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Exit codes, documented in docs/cli.md.
const (
	ExitOK       = 0 // ran, nothing that --fail-on names was found
	ExitFindings = 1 // ran, and found what --fail-on names (or unexpected calls)
	ExitUsage    = 2 // bad usage, or unreadable input (a partial report may still be printed)
	// ExitUnexpected is egress run's exit code when the command succeeded
	// but made calls the policy does not allow (enforce mode); docs/ci.md.
	ExitUnexpected = 3
	// ExitStopped is egress run's exit code when egress itself was
	// interrupted (SIGINT or SIGTERM) and stopped the command.
	ExitStopped = 130
)

// egress run's own exit codes, kept apart from the wrapped command's
// (whose status passes through unchanged) as env(1) and timeout(1) do.
const (
	ExitRunFindings   = 4   // CMD succeeded, and a call matched --fail-on
	ExitRunFailed     = 125 // egress run itself failed: usage or set-up
	ExitNotExecutable = 126 // CMD was found but could not be executed
	ExitNotFound      = 127 // CMD was not found
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
	// command says code is the wrapped command's own status (egress run),
	// passed on unchanged.
	command bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// env is what every command gets from Main.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// softMemoryLimit keeps egress's heap near its live data: the analyzer's
// tables are bounded, so a limit lets the collector run before the heap
// doubles (GOMEMLIMIT, when set, wins).
const softMemoryLimit = 48 << 20

// Main runs egress with args and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softMemoryLimit)
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "egress",
		Short: "Find where an application phones home, and what it costs",
		Long: `egress finds the outbound connections and DNS lookups an application makes,
tells which of them blocked (a firewall silently dropping SYNs, a resolver that
never answers) and how much of an action's time they cost.

  egress replay capture.pcapng                  explain a packet capture
  sudo egress watch --pid N --trigger 'CMD'     watch a running process live (eBPF)
  sudo egress run --rules allow.yaml -- CMD     run a command, fail on unexpected calls
  egress rules check allow.yaml                 validate an allowlist
  egress diff old.json new.json                 what is new since a baseline report

Exit codes: 0 ok, 1 --fail-on matched (diff: something new), 2 usage or
unreadable input. run: the command's own status, else 3 unexpected calls,
4 --fail-on matched, 125 egress failed, 126/127 not executable/not found;
docs/cli.md.
`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = buildVersion()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newReplayCmd(e))
	root.AddCommand(newWatchCmd(e))
	root.AddCommand(newRulesCmd(e))
	root.AddCommand(newRunCmd(e))
	root.AddCommand(newVersionCmd(e))
	root.AddCommand(newDiffCmd(e))
	root.AddCommand(newReportCmd(e))
	root.AddCommand(newAgentCmd(e))

	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "egress: %v\n", ee.err)
		}
		return ee.code
	}
	// Anything cobra itself rejects (unknown flag, missing argument) is usage.
	fmt.Fprintf(stderr, "egress: %v\nRun 'egress --help' for usage.\n", err)
	return ExitUsage
}

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}
