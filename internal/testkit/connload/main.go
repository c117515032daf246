package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	delay := fs.Duration("delay", 0, "wait this long before the load starts")
	duration := fs.Duration("duration", 5*time.Second, "how long to connect (at most 1m)")
	workers := fs.Int("workers", 4, "concurrent connecting goroutines (1-256)")
	rate := fs.Int("rate", 0, "target connects per second in total (0: as fast as possible)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *duration <= 0 || *duration > time.Minute || *workers < 1 || *workers > 256 || *rate < 0 {
		fmt.Fprintln(stderr, "connload: -duration must be in (0, 1m], -workers in [1, 256], -rate >= 0")
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(stderr, "connload: listening: %v\n", err)
		return 1
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	select {
	case <-time.After(*delay):
	case <-ctx.Done():
		return 1
	}
	n, failed, took := load(ctx, ln.Addr().String(), *workers, *rate, *duration)
	fmt.Fprintf(stdout, "connects %d failed %d seconds %.3f per_second %.0f\n", n, failed, took.Seconds(), float64(n)/took.Seconds())
	return 0
}

// load connects from workers goroutines until d has passed; with rate > 0
// each worker paces itself to rate/workers connects per second.
func load(ctx context.Context, addr string, workers, rate int, d time.Duration) (ok, failed uint64, took time.Duration) {
	var nOK, nFail atomic.Uint64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var gap time.Duration
			if rate > 0 {
				gap = time.Duration(int64(time.Second) * int64(workers) / int64(rate))
			}
			next := time.Now()
			dialer := net.Dialer{Timeout: time.Second}
			for ctx.Err() == nil {
				c, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
						nFail.Add(1)
					}
					continue
				}
				// RST instead of FIN: no TIME_WAIT, so the ephemeral ports
				// last the whole run.
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				nOK.Add(1)
				if gap > 0 {
					next = next.Add(gap)
					if w := time.Until(next); w > 0 {
						time.Sleep(w)
					}
				}
			}
		}()
	}
	wg.Wait()
	return nOK.Load(), nFail.Load(), time.Since(start)
}
