// Command callout makes outbound calls for tests that need a program with
// no dependencies (a static binary in a container image made with podman
// import): for each HOST:PORT argument it looks the host up through the
// -dns server and connects to it, one after another, with -timeout each,
// and prints the outcome. Only the test network's addresses are given to it.
//
//	callout -dns 198.19.77.1:53 -timeout 1s allowed.agent.test:80 refused.agent.test:80
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout)) }

func run(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("callout", flag.ContinueOnError)
	dns := fs.String("dns", "", "DNS server (ADDR:PORT) to look names up with (default: the system's)")
	timeout := fs.Duration("timeout", time.Second, "connect timeout of each call")
	wait := fs.Duration("wait", 0, "wait this long before the first call (time for a watcher to attach)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r := net.DefaultResolver
	if *dns != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", *dns)
		}}
	}
	d := net.Dialer{Timeout: *timeout, Resolver: r}
	time.Sleep(*wait)
	for _, target := range fs.Args() {
		c, err := d.Dial("tcp4", target)
		switch {
		case err == nil:
			c.Close()
			fmt.Fprintf(out, "%s established\n", target)
		case errors.Is(err, syscall.ECONNREFUSED):
			fmt.Fprintf(out, "%s refused\n", target)
		default:
			fmt.Fprintf(out, "%s failed: %v\n", target, err)
		}
	}
	return 0
}
