package analyze

import (
	"net/netip"
	"regexp"
	"time"

	"github.com/egress-dev/egress/report"
)

// Config tunes an Analyzer. The zero value is usable: it infers local
// addresses from the capture, covers the whole capture and uses default
// table sizes.
type Config struct {
	// Local lists this host's addresses. Empty: inferred from the capture.
	Local []netip.Prefix
	// LocalAny counts every address as local, so every attempt is reported.
	LocalAny bool

	// From and To bound the window (Unix nanoseconds); zero means the
	// capture's first or last packet.
	From, To int64
	// FromOffset and ToOffset, when set, place the window edges relative to
	// the first observation instead.
	FromOffset, ToOffset time.Duration

	// Table capacities; zero picks the default.
	MaxFlows   int // concurrent TCP flows tracked (default 65536)
	MaxLookups int // concurrent unanswered DNS queries (default 16384)
	MaxNames   int // addresses remembered with their DNS names (default 65536)
	// MaxRecords is how many connection and lookup records are kept one by
	// one (successes up to half of it, failures up to all of it); past it,
	// a call like an earlier one (same client host, destination, name and
	// outcome) is folded into that record's count (default 5000 of each).
	MaxRecords int
	// MaxFoldKeys bounds the records that fold calls past MaxRecords by
	// client host, destination and outcome, and (a quarter of it for
	// failures and successes each) by destination and outcome; past every
	// bound calls join one catch-all per outcome (default 2*MaxRecords).
	MaxFoldKeys int

	// Settle is how long past the window's end calls that started inside
	// it are followed, so that their outcome is the one the capture shows
	// (default 3 minutes: longer than Linux's 127 s of SYN retries).
	Settle time.Duration

	// DNSGiveUp is how long a resolver is assumed to wait for an answer
	// when the capture shows no later action of the same host (default 5 s,
	// the glibc and Go default).
	DNSGiveUp time.Duration

	// AppFrames, when set, says which stack frames are the application's
	// own code (matched against function, file and module) for a call's
	// called_from; nil applies report.AppFrame's default rule.
	AppFrames *regexp.Regexp

	// Settled, when set, is handed each egress call's record as soon as the
	// call is settled, before Finish (streaming output). Calls folded into
	// an earlier record are not handed again: the final report counts
	// them. Where the local addresses are only inferred, the egress
	// decision is the one known at that moment.
	Settled Settled
	// SettleFolded also hands Settled the calls folded into an earlier
	// record, each as its own record (count 1, its own destination even
	// when the report folds it into "(other destinations)"): egress agent
	// runs for days, long past MaxRecords, and must see every call.
	SettleFolded bool
}

// Settled receives settled calls; the record is the receiver's to keep.
type Settled interface {
	Connection(*report.Connection)
	Lookup(*report.Lookup)
}

func (c *Config) setDefaults() {
	if c.MaxFlows <= 0 {
		c.MaxFlows = 65536
	}
	if c.MaxLookups <= 0 {
		c.MaxLookups = 16384
	}
	if c.MaxNames <= 0 {
		c.MaxNames = 65536
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 5000
	}
	if c.MaxFoldKeys <= 0 {
		c.MaxFoldKeys = 2 * c.MaxRecords
	}
	if c.Settle <= 0 {
		c.Settle = 3 * time.Minute
	}
	if c.DNSGiveUp <= 0 {
		c.DNSGiveUp = 5 * time.Second
	}
}
