package gencap

import (
	"errors"
	"fmt"
	"time"
)

// Config describes a capture to generate. Zero fields take the defaults named
// in their comments.
type Config struct {
	// TargetBytes and TargetPackets stop the generator from starting new
	// sessions near that many bytes (pcap headers included) or packets; at
	// least one must be set. The sessions in flight then finish, so every
	// outcome in Stats is final. Measured with 4096 flows, files from 200 MB
	// to 2 GB land within 5% of TargetBytes; a target below about Flows x
	// 10 kB is overshot (the first sessions of every slot run to their end).
	TargetBytes   int64
	TargetPackets int64

	// Seed selects the pseudo-random sequence; the same Config gives the same
	// bytes.
	Seed uint64

	// Flows is how many sessions run at once (default 4096).
	Flows int
	// Clients is how many client hosts the sessions are spread over
	// (default 256, at most 65024). With more clients than Flows, each
	// slot's sessions take the hosts in turn.
	Clients int
	// Names is the size of the DNS name pool (default 4096).
	Names int

	// MeanPacketSize is the mean frame length on the wire that the
	// generator steers towards (default 500 bytes, 120 to 1400).
	MeanPacketSize int
	// DNSShare is the share of packets that are DNS (default 0.2); a
	// negative value turns DNS off.
	DNSShare float64
	// IPv6Share is the share of TCP connections over IPv6 (default 0.15); a
	// negative value means none.
	IPv6Share float64
	// DropShare, RefuseShare and RejectShare are the shares of connection
	// attempts that are silently dropped, refused with RST and rejected with
	// ICMP unreachable (defaults 0.02, 0.02, 0.01); negative means none.
	DropShare, RefuseShare, RejectShare float64

	// InboundShare is the share of TCP sessions that a remote host
	// (192.0.2.0/24) opens to a client host, and ScanShare the share of
	// those that are SYN scans of a closed, silent port (one SYN, no
	// answer); the rest are served like outbound sessions. Default none.
	InboundShare, ScanShare float64

	// Windows asks for the truth of some windows too: Stats.Windows then
	// counts, for each, the calls that start inside it, by outcome.
	Windows []Window

	// PacketsPerSecond scales simulated time (default 100000): the per-flow
	// round-trip times are chosen so that Flows busy sessions emit about this
	// many packets per simulated second. Idle waits (SYN retransmits, DNS
	// retries) are real seconds regardless. At the default a 0.5 GB file
	// spans about 10 s, longer than the longest wait, so the number of
	// waiting flows has settled before then and stays flat after.
	PacketsPerSecond int

	// Start is the time of the first packet (default 2025-01-01T00:00:00Z).
	Start time.Time
	// Nanosecond writes nanosecond timestamps (magic 0xa1b23c4d) instead of
	// microsecond ones.
	Nanosecond bool
}

// Window is a span of the capture, as offsets from Config.Start (both
// inclusive, on the timestamps as written: microseconds unless Nanosecond).
type Window struct {
	From, To time.Duration
}

// Defaults used where a Config field is zero.
const (
	DefaultFlows            = 4096
	DefaultClients          = 256
	DefaultNames            = 4096
	DefaultMeanPacketSize   = 500
	DefaultDNSShare         = 0.2
	DefaultIPv6Share        = 0.15
	DefaultDropShare        = 0.02
	DefaultRefuseShare      = 0.02
	DefaultRejectShare      = 0.01
	DefaultPacketsPerSecond = 100000
)

// withDefaults returns cfg with zero fields replaced by defaults and negative
// shares by zero, or an error naming the first bad field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.TargetBytes <= 0 && cfg.TargetPackets <= 0 {
		return cfg, errors.New("config: set TargetBytes or TargetPackets")
	}
	if cfg.Flows == 0 {
		cfg.Flows = DefaultFlows
	}
	if cfg.Clients == 0 {
		cfg.Clients = DefaultClients
	}
	if cfg.Names == 0 {
		cfg.Names = DefaultNames
	}
	if cfg.MeanPacketSize == 0 {
		cfg.MeanPacketSize = DefaultMeanPacketSize
	}
	if cfg.PacketsPerSecond == 0 {
		cfg.PacketsPerSecond = DefaultPacketsPerSecond
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	share := func(p *float64, def float64) {
		switch {
		case *p == 0:
			*p = def
		case *p < 0:
			*p = 0
		}
	}
	share(&cfg.DNSShare, DefaultDNSShare)
	share(&cfg.IPv6Share, DefaultIPv6Share)
	share(&cfg.DropShare, DefaultDropShare)
	share(&cfg.RefuseShare, DefaultRefuseShare)
	share(&cfg.RejectShare, DefaultRejectShare)

	switch {
	case cfg.Flows < 1 || cfg.Flows > 1<<20:
		return cfg, fmt.Errorf("config: Flows %d out of range 1..%d", cfg.Flows, 1<<20)
	case cfg.Clients < 1 || cfg.Clients > 65024:
		return cfg, fmt.Errorf("config: Clients %d out of range 1..65024", cfg.Clients)
	case cfg.Names < 16 || cfg.Names > 1<<20:
		return cfg, fmt.Errorf("config: Names %d out of range 16..%d", cfg.Names, 1<<20)
	case cfg.MeanPacketSize < 120 || cfg.MeanPacketSize > 1400:
		return cfg, fmt.Errorf("config: MeanPacketSize %d out of range 120..1400", cfg.MeanPacketSize)
	case cfg.PacketsPerSecond < 1:
		return cfg, fmt.Errorf("config: PacketsPerSecond %d must be positive", cfg.PacketsPerSecond)
	case cfg.DNSShare >= 0.9:
		return cfg, fmt.Errorf("config: DNSShare %g must be below 0.9", cfg.DNSShare)
	case cfg.IPv6Share > 1:
		return cfg, fmt.Errorf("config: IPv6Share %g above 1", cfg.IPv6Share)
	case cfg.InboundShare < 0 || cfg.InboundShare > 0.9 || cfg.ScanShare < 0 || cfg.ScanShare > 1:
		return cfg, errors.New("config: InboundShare must be in 0..0.9 and ScanShare in 0..1")
	case cfg.DropShare+cfg.RefuseShare+cfg.RejectShare > 1:
		return cfg, errors.New("config: DropShare+RefuseShare+RejectShare above 1")
	}
	// Each client needs a distinct source port per concurrent slot.
	if perClient := (cfg.Flows + cfg.Clients - 1) / cfg.Clients; perClient > 14000 {
		return cfg, fmt.Errorf("config: %d flows over %d clients leaves too few ports", cfg.Flows, cfg.Clients)
	}
	return cfg, nil
}
