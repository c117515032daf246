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
)

// Report is the result of analysing one capture or one watch window.
type Report struct {
	SchemaVersion int          `json:"schema_version"`
	Source        string       `json:"source"` // file name, or "watch pid N"
	Backend       string       `json:"backend"`
	Window        Window       `json:"window"`
	Headline      string       `json:"headline"`
	Local         Local        `json:"local"`
	Connections   []Connection `json:"connections"`
	Lookups       []Lookup     `json:"lookups"`
	Hints         []Hint       `json:"hints"`
	Stats         Stats        `json:"stats"`
	Errors        []string     `json:"errors"` // problems met while reading; the report is partial when set
}

// Window is the time span the report covers.
type Window struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Duration Duration  `json:"duration_ms"`
	Blocked  Duration  `json:"blocked_ms"` // union of blocked intervals inside the window
}

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
	DstIP      netip.Addr `json:"dst_ip"` // invalid ("" on the wire) for a record of many destinations
	DstPort    uint16     `json:"dst_port"`
	Proto      string     `json:"proto"`
	Start      time.Time  `json:"start"`        // first SYN
	Attempts   int        `json:"attempts"`     // SYNs sent (1 + retransmissions)
	SynTimes   []Duration `json:"syn_times_ms"` // each SYN, after Start (bounded list)
	SynAcks    int        `json:"synacks"`      // SYN-ACKs the server sent on this attempt's flow
	RSTs       int        `json:"rsts"`         // RSTs either way on this attempt's flow
	Outcome    Outcome    `json:"outcome"`
	End        time.Time  `json:"end"` // answer, give-up, or window end
	Blocked    Duration   `json:"blocked_ms"`
	Inferred   bool       `json:"inferred"`  // End is an estimate (give-up not observed)
	EndBasis   string     `json:"end_basis"` // how End was found: answer, client-rst, kernel, next-action, retransmit-schedule, window-end, ...
	ICMP       *ICMP      `json:"icmp,omitempty"`
	Loopback   bool       `json:"loopback"`
	Count      int        `json:"count"` // identical calls folded into this record (1 unless folded)
	Verdict    *Verdict   `json:"verdict,omitempty"`
}

// Src is the connection's local socket.
func (c *Connection) Src() netip.AddrPort { return netip.AddrPortFrom(c.SrcIP, c.SrcPort) }

// Dst is the connection's destination.
func (c *Connection) Dst() netip.AddrPort { return netip.AddrPortFrom(c.DstIP, c.DstPort) }

// ICMP describes an ICMP error that rejected a connection or lookup.
type ICMP struct {
	Type    uint8  `json:"type"`
	Code    uint8  `json:"code"`
	Meaning string `json:"meaning"`
	From    string `json:"from"`
}

// Lookup is one DNS query (with its retransmissions) and its outcome.
type Lookup struct {
	PID       *int           `json:"pid"`
	Comm      *string        `json:"comm"`
	Name      string         `json:"name"`
	QType     string         `json:"qtype"`
	Client    netip.Addr     `json:"client"`
	Server    netip.AddrPort `json:"server"`    // invalid ("" on the wire) for a record of many servers
	Transport string         `json:"transport"` // udp or tcp
	Start     time.Time      `json:"start"`
	Attempts  int            `json:"attempts"`
	Outcome   Outcome        `json:"outcome"`
	Rcode     string         `json:"rcode,omitempty"`
	Answers   []string       `json:"answers"`
	CNAMEs    []string       `json:"cnames,omitempty"`
	End       time.Time      `json:"end"`
	Blocked   Duration       `json:"blocked_ms"`
	Inferred  bool           `json:"inferred"`
	EndBasis  string         `json:"end_basis"`
	ICMP      *ICMP          `json:"icmp,omitempty"`
	Count     int            `json:"count"`
	Verdict   *Verdict       `json:"verdict,omitempty"`
}

// Hint is something the analyzer suspects but cannot see, with what to do.
type Hint struct {
	Kind    string `json:"kind"` // e.g. "answered-no-connect"
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// Verdict is the rules' view of a call (set when rules or the catalog were applied).
type Verdict struct {
	Expected bool   `json:"expected"`
	Rule     string `json:"rule,omitempty"`
	Catalog  string `json:"catalog,omitempty"` // label of a known phone-home
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
}
