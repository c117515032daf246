//go:build unix

// Command stackapp is the Go test program of egress --stacks: on each
// SIGUSR2 (or once at start with -now, then it exits) its function
// checkForUpdates dials the vendor (-vendor), so egress watch or run can
// name that function, its file and its line.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	vendor := flag.String("vendor", "198.51.100.10:80", "address the update check dials")
	timeout := flag.Duration("connect-timeout", time.Second, "connect timeout of the update check")
	now := flag.Bool("now", false, "check once at start, then exit")
	flag.Parse()
	if *now {
		checkForUpdates(*vendor, *timeout)
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2, syscall.SIGTERM)
	fmt.Println("ready")
	for s := range sig {
		if s == syscall.SIGTERM {
			return
		}
		checkForUpdates(*vendor, *timeout)
	}
}

// checkForUpdates is the call site the test expects egress to name, with
// this file and the line of the Dial. noinline keeps it a frame of its own.
//
//go:noinline
func checkForUpdates(addr string, timeout time.Duration) {
	c, err := net.DialTimeout("tcp", addr, timeout) // the call site (the test checks this line: 36)
	if err != nil {
		fmt.Println("update check:", err)
		return
	}
	c.Close()
	fmt.Println("update check: connected")
}
