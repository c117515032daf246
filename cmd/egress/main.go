// Command egress finds where an application phones home and what it costs.
// See `egress --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/egress-dev/egress/cmd/egress/cli"
	"github.com/egress-dev/egress/internal/cgrouprun"
)

func main() {
	// egress run starts a copy of itself in the command's cgroup as the
	// command's launcher (confinement, then exec): it never returns there.
	cgrouprun.MaybeLaunch()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
