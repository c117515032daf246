// Command egress finds where an application phones home and what it costs.
// See `egress --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/egress-dev/egress/cmd/egress/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
