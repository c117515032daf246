// Command gencap writes a large, deterministic, synthetic pcap for the
// replay benchmark and prints what it wrote as JSON.
//
//	gencap -o FILE -size 2GB -seed 1 [-flows 4096] [-clients 256] [-dns 0.2]
//	       [-inbound 0.1 -scans 0.5] [-windows 30s-1m,5m-6m]
//
// Exit codes: 0 written, 1 failed, 2 bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/egress-dev/egress/internal/testkit/gencap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, testable in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gencap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gencap -o FILE -size SIZE [flags]\n\nSIZE takes a suffix: kB, MB, GB (powers of 1000) or KiB, MiB, GiB.\n\n")
		fs.PrintDefaults()
	}
	out := fs.String("o", "", "write the capture to `FILE` (- for stdout)")
	size := fs.String("size", "", "stop starting sessions at this file `size`, e.g. 2GB")
	packets := fs.Int64("packets", 0, "stop starting sessions at this many packets")
	seed := fs.Uint64("seed", 1, "PRNG seed: the same flags give the same bytes")
	flows := fs.Int("flows", gencap.DefaultFlows, "concurrent sessions")
	clients := fs.Int("clients", gencap.DefaultClients, "client hosts")
	inbound := fs.Float64("inbound", 0, "share of TCP sessions opened by remote hosts to the client hosts")
	scans := fs.Float64("scans", 0, "share of the inbound sessions that are unanswered SYN scans")
	drop := fs.Float64("drop", gencap.DefaultDropShare, "share of outbound attempts dropped silently")
	refuse := fs.Float64("refuse", gencap.DefaultRefuseShare, "share of outbound attempts refused (RST)")
	reject := fs.Float64("reject", gencap.DefaultRejectShare, "share of outbound attempts rejected (ICMP)")
	windows := fs.String("windows", "", "also count the truth of windows `FROM-TO,...` (offsets from the start, e.g. 30s-60s)")
	dns := fs.Float64("dns", gencap.DefaultDNSShare, "share of packets that are DNS (0 for none)")
	v6 := fs.Float64("ipv6", gencap.DefaultIPv6Share, "share of TCP connections over IPv6")
	mean := fs.Int("mean", gencap.DefaultMeanPacketSize, "mean frame size in bytes")
	names := fs.Int("names", gencap.DefaultNames, "DNS name pool size")
	pps := fs.Int("pps", gencap.DefaultPacketsPerSecond, "simulated packets per second")
	nano := fs.Bool("nano", false, "nanosecond timestamps")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *out == "" || (*size == "" && *packets == 0) {
		fs.Usage()
		return 2
	}
	cfg := gencap.Config{
		TargetPackets:    *packets,
		Seed:             *seed,
		Flows:            *flows,
		Clients:          *clients,
		InboundShare:     *inbound,
		ScanShare:        *scans,
		DropShare:        orNone(*drop),
		RefuseShare:      orNone(*refuse),
		RejectShare:      orNone(*reject),
		Names:            *names,
		MeanPacketSize:   *mean,
		DNSShare:         orNone(*dns),
		IPv6Share:        orNone(*v6),
		PacketsPerSecond: *pps,
		Nanosecond:       *nano,
	}
	if *windows != "" {
		for _, w := range strings.Split(*windows, ",") {
			from, to, ok := strings.Cut(strings.TrimSpace(w), "-")
			f, err1 := time.ParseDuration(from)
			t, err2 := time.ParseDuration(to)
			if !ok || err1 != nil || err2 != nil || t < f {
				fmt.Fprintf(stderr, "gencap: bad window %q: want FROM-TO offsets such as 30s-1m\n", w)
				return 2
			}
			cfg.Windows = append(cfg.Windows, gencap.Window{From: f, To: t})
		}
	}
	if *size != "" {
		n, err := parseSize(*size)
		if err != nil {
			fmt.Fprintf(stderr, "gencap: %v\n", err)
			return 2
		}
		cfg.TargetBytes = n
	}
	stats, err := write(ctx, *out, stdout, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "gencap: %v\n", err)
		return 1
	}
	report := stdout
	if *out == "-" {
		report = stderr
	}
	enc := json.NewEncoder(report)
	enc.SetIndent("", "  ")
	if err := enc.Encode(stats); err != nil {
		fmt.Fprintf(stderr, "gencap: writing stats: %v\n", err)
		return 1
	}
	return 0
}

// orNone maps the command line's 0 ("none") to the Config's negative share.
func orNone(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}

// write generates into path (or stdout for "-"); cancelling ctx stops the
// generator at its next write and removes the partial file.
func write(ctx context.Context, path string, stdout io.Writer, cfg gencap.Config) (gencap.Stats, error) {
	if path == "-" {
		return gencap.Write(ctxWriter{ctx, stdout}, cfg)
	}
	f, err := os.Create(path)
	if err != nil {
		return gencap.Stats{}, fmt.Errorf("creating capture: %w", err)
	}
	stats, err := gencap.Write(ctxWriter{ctx, f}, cfg)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing capture: %w", cerr)
	}
	if err != nil {
		os.Remove(path)
	}
	return stats, err
}

// ctxWriter fails writes once ctx is done, so Ctrl-C stops a long run.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// parseSize reads "2GB", "500MB", "0.5GB", "1GiB" or a plain byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), 1.0
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || v*mult > 1<<50 {
		return 0, fmt.Errorf("bad size %q: want a positive number with an optional unit such as 500MB or 2GB", s)
	}
	return int64(v * mult), nil
}
