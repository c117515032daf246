// Package report holds what egress found, and renders it for people (a table)
// and for machines (JSON). It is the only package that knows output formats.
//
// The JSON field names are a stable interface documented in docs/json-schema.md;
// add fields, never rename or remove them without bumping SchemaVersion.
package report

import (
	"net/netip"
	"time"
)

// SchemaVersion is the version of the JSON report format.
const SchemaVersion = 1

// Name sources: where a connection's host name came from.
const (
	SourceDNS  = "dns"
	SourceSNI  = "sni"
	SourceHTTP = "http"
	SourceNone = "none"
	// SourceGuess: a DNS name for the address, but not one the connecting
	// process (or host) is known to have looked up before the connect, and
	// the address has several names: it may be any of them.
	SourceGuess = "dns-guess"
)

// Report is the result of analysing one capture or one watch window.
type Report struct {
	SchemaVersion int          `json:"schema_version"`
	Source        string       `json:"source"` // file name, or "watch pid N"
	Backend       string       `json:"backend"`
	Window        Window       `json:"window"`
	Headline      string       `json:"headline"`
	Local         Local        `json:"local"`
	Check         *Check       `json:"check,omitempty"` // how the calls were judged (rules, baseline, --fail-on)
	Connections   []Connection `json:"connections"`
	Lookups       []Lookup     `json:"lookups"`
	Hints         []Hint       `json:"hints"`
	// HostsSeen and Hosts are set when more than one local host made calls:
	// how many, and the ones that lost the most time (at most MaxHosts).
	HostsSeen    int      `json:"hosts_seen,omitempty"`
	HostsFailing int      `json:"hosts_failing,omitempty"` // of those, the hosts with failed calls
	Hosts        []Host   `json:"hosts,omitempty"`
	Stats        Stats    `json:"stats"`
	Errors       []string `json:"errors"` // problems met while reading; the report is partial when set
}

// Window is the time span the report covers.
type Window struct {
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS float64   `json:"duration_ms"`
	BlockedMS  float64   `json:"blocked_ms"` // union of blocked intervals inside the window
	// LostMS is the time inside the window the action lost: at least one
	// failed call outstanding and none of the watched threads running
	// (LostBasis "scheduler"), or, from a capture, an upper bound: each
	// failed call's wait until its host's next own action ("capture").
	LostMS    float64 `json:"lost_ms"`
	LostBasis string  `json:"lost_basis"`
}

// Lost-time bases (Window.LostBasis).
const (
	LostScheduler = "scheduler"
	LostCapture   = "capture"
)

// Local says which addresses were taken as this host's, and why.
type Local struct {
	Basis     string   `json:"basis"` // "flag", "any", "capture-direction", "inferred-servers", "all-initiators"
	Addresses []string `json:"addresses"`
}

// Connection is one outbound connection attempt (one client socket, one ISN).
type Connection struct {
	PID        *int       `json:"pid"`
	Comm       *string    `json:"comm"`
	Host       string     `json:"host"` // "" when no name is known
	NameSource string     `json:"name_source"`
	SrcIP      netip.Addr `json:"src_ip"`
	SrcPort    uint16     `json:"src_port"`
	DstIP      netip.Addr `json:"dst_ip"` // invalid ("" on the wire) for a catch-all
	DstPort    uint16     `json:"dst_port"`
	Proto      string     `json:"proto"`
	Start      time.Time  `json:"start"`        // first SYN
	Attempts   int        `json:"attempts"`     // SYNs sent (1 + retransmissions)
	SynTimesMS []float64  `json:"syn_times_ms"` // each SYN, ms after Start (bounded list)
	SynAcks    int        `json:"synacks"`      // SYN-ACKs the server sent on this attempt's flow
	RSTs       int        `json:"rsts"`         // RSTs either way on this attempt's flow
	Outcome    Outcome    `json:"outcome"`
	End        time.Time  `json:"end"`        // answer, give-up, or window end
	BlockedMS  float64    `json:"blocked_ms"` // the wait inside the window; for a folded record the longest single wait
	// BlockedSumMS is, for a folded record (Count > 1), the sum of its
	// calls' waits inside the window; absent for a single call.
	BlockedSumMS float64 `json:"blocked_sum_ms,omitempty"`
	// LostMS is, of BlockedMS, the time the watched processes lost
	// (failed calls only; see Window.LostBasis).
	LostMS   float64 `json:"lost_ms"`
	Inferred bool    `json:"inferred"`  // End is an estimate (give-up not observed)
	EndBasis string  `json:"end_basis"` // how End was found: answer, client-rst, kernel, next-action, retransmit-schedule, window-end, ...
	ICMP     *ICMP   `json:"icmp,omitempty"`
	Loopback bool    `json:"loopback"`
	Count    int     `json:"count"` // identical calls folded into this record (1 unless folded)
	// FoldedBy says what the calls of a folded record share (FoldClient,
	// FoldDestination, FoldOutcome); absent for a single call.
	FoldedBy string `json:"folded_by,omitempty"`
	// Destinations is, for a catch-all record (FoldedBy FoldOutcome), how
	// many distinct destinations its calls went to.
	Destinations int      `json:"destinations,omitempty"`
	Verdict      *Verdict `json:"verdict,omitempty"`
	// Stack is the user-space stack of the thread at connect(), innermost
	// first (egress --stacks; absent otherwise). CalledFrom names its
	// application frame (see CallSite): "main.checkForUpdates (updates.go:42)".
	Stack      []Frame `json:"stack,omitempty"`
	CalledFrom string  `json:"called_from,omitempty"`
}

// Src is the connection's local socket.
func (c *Connection) Src() netip.AddrPort { return netip.AddrPortFrom(c.SrcIP, c.SrcPort) }

// Dst is the connection's destination.
func (c *Connection) Dst() netip.AddrPort { return netip.AddrPortFrom(c.DstIP, c.DstPort) }

// MaxHosts bounds Report.Hosts.
const MaxHosts = 50

// Host sums up the calls of one local host inside the window.
type Host struct {
	Address   netip.Addr   `json:"address"`
	Addresses []netip.Addr `json:"addresses,omitempty"` // all its addresses, when several are joined (dual stack)
	Processes []string     `json:"processes,omitempty"` // "comm[pid]" of its calls, where known (at most 3)
	// ActiveMS is from its first call's start to its last call's end,
	// inside the window; LostMS the union of its failed calls' waits.
	ActiveMS float64   `json:"active_ms"`
	LostMS   float64   `json:"lost_ms"`
	Calls    int       `json:"calls"`  // connection attempts and lookups
	Failed   int       `json:"failed"` // of those, failed (failed outcomes as in the headline)
	Culprits []Culprit `json:"culprits"`
}

// Culprit is a destination whose failed calls cost a host time.
type Culprit struct {
	Lookup      bool    `json:"lookup"`
	Destination string  `json:"destination"` // host or address and port; a lookup's name
	Outcome     Outcome `json:"outcome"`     // Mixed when several
	Calls       int     `json:"calls"`
	LongestMS   float64 `json:"longest_ms"` // the longest single wait
	Inferred    bool    `json:"inferred"`
}

// ICMP describes an ICMP error that rejected a connection or lookup.
type ICMP struct {
	Type    uint8      `json:"type"`
	Code    uint8      `json:"code"`
	Meaning string     `json:"meaning"`
	From    netip.Addr `json:"from"`
}

// Lookup is one DNS query (with its retransmissions) and its outcome.
type Lookup struct {
	PID       *int           `json:"pid"`
	Comm      *string        `json:"comm"`
	Name      string         `json:"name"`
	QType     string         `json:"qtype"`
	Client    netip.Addr     `json:"client"`
	Server    netip.AddrPort `json:"server"`    // invalid ("" on the wire) for a catch-all
	Transport string         `json:"transport"` // udp or tcp
	Start     time.Time      `json:"start"`
	Attempts  int            `json:"attempts"`
	Outcome   Outcome        `json:"outcome"`
	Rcode     string         `json:"rcode,omitempty"`
	Answers   []string       `json:"answers"`
	CNAMEs    []string       `json:"cnames,omitempty"`
	End       time.Time      `json:"end"`
	BlockedMS float64        `json:"blocked_ms"`
	// BlockedSumMS, FoldedBy and Destinations: as for Connection.
	BlockedSumMS float64  `json:"blocked_sum_ms,omitempty"`
	LostMS       float64  `json:"lost_ms"` // as Connection.LostMS
	Inferred     bool     `json:"inferred"`
	EndBasis     string   `json:"end_basis"`
	ICMP         *ICMP    `json:"icmp,omitempty"`
	Count        int      `json:"count"`
	FoldedBy     string   `json:"folded_by,omitempty"`
	Destinations int      `json:"destinations,omitempty"`
	Verdict      *Verdict `json:"verdict,omitempty"`
}

// What the calls of a folded record share (Connection.FoldedBy).
const (
	// FoldClient: the same client host, destination, port (or query name
	// and type) and outcome.
	FoldClient = "client"
	// FoldDestination: the same destination and outcome, from several
	// client hosts (src_ip / client is the first call's).
	FoldDestination = "destination"
	// FoldOutcome: only the outcome: the catch-all past every bound, with
	// no destination (Destinations says how many it stands for).
	FoldOutcome = "outcome"
)

// IsCatchAll says whether a record is the nameless catch-all past every
// bound.
func (c *Connection) IsCatchAll() bool { return c.FoldedBy == FoldOutcome }

// IsCatchAll says whether a record is the nameless catch-all past every
// bound.
func (l *Lookup) IsCatchAll() bool { return l.FoldedBy == FoldOutcome }

// Hint is something the analyzer suspects but cannot see, with what to do.
type Hint struct {
	Kind    string `json:"kind"` // e.g. "answered-no-connect"
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// Stats counts what was read and what could not be used: no loss is silent.
type Stats struct {
	Packets          uint64 `json:"packets"`
	Bytes            uint64 `json:"bytes"`
	Undecodable      uint64 `json:"undecodable"`
	Truncated        uint64 `json:"truncated"`
	FlowsEvicted     uint64 `json:"flows_evicted"`
	LookupsEvicted   uint64 `json:"lookups_evicted"`
	NamesEvicted     uint64 `json:"names_evicted"`
	RecordsFolded    uint64 `json:"records_folded"`
	RecordsDropped   uint64 `json:"records_dropped"`
	EventsLost       uint64 `json:"events_lost"`
	InboundAttempts  uint64 `json:"inbound_attempts"`
	OutsideWindow    uint64 `json:"outside_window"`
	UnmatchedAnswers uint64 `json:"unmatched_dns_responses"`
	// ActivityChanges counts the scheduler view's changes (watch, run);
	// past its bound, idle spells shorter than ActivityCoarsenedMS were
	// counted as running (lost_ms is then a lower bound).
	ActivityChanges     uint64  `json:"activity_changes"`
	ActivityCoarsenedMS float64 `json:"activity_coarsened_ms"`
}
