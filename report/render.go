package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"github.com/olekukonko/tablewriter"
)

// WriteJSON writes r as indented JSON (the documented schema). It streams
// record by record, so a report of many calls never exists twice in memory;
// the bytes are those of json.MarshalIndent(r, "", "  ") plus a newline.
func WriteJSON(w io.Writer, r *Report) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	jw := &jsonWriter{w: bw}
	jw.raw("{\n")
	jw.field("schema_version", r.SchemaVersion, false)
	jw.field("source", r.Source, false)
	jw.field("backend", r.Backend, false)
	jw.field("window", r.Window, false)
	jw.field("headline", r.Headline, false)
	jw.field("local", r.Local, false)
	if r.Check != nil {
		jw.field("check", r.Check, false)
	}
	jw.array("connections", len(r.Connections), func(i int) any { return &r.Connections[i] })
	jw.array("lookups", len(r.Lookups), func(i int) any { return &r.Lookups[i] })
	jw.field("hints", r.Hints, false)
	if r.HostsSeen > 0 {
		jw.field("hosts_seen", r.HostsSeen, false)
		jw.field("hosts_failing", r.HostsFailing, false)
		jw.field("hosts", r.Hosts, false)
	}
	jw.field("stats", r.Stats, false)
	jw.field("errors", r.Errors, true)
	jw.raw("}\n")
	if jw.err == nil {
		jw.err = bw.Flush()
	}
	if jw.err != nil {
		return fmt.Errorf("write json report: %w", jw.err)
	}
	return nil
}

type jsonWriter struct {
	w   *bufio.Writer
	err error
}

func (j *jsonWriter) raw(s string) {
	if j.err == nil {
		_, j.err = j.w.WriteString(s)
	}
}

func (j *jsonWriter) value(prefix string, v any) {
	if j.err != nil {
		return
	}
	b, err := json.MarshalIndent(v, prefix, "  ")
	if err != nil {
		j.err = err
		return
	}
	_, j.err = j.w.Write(b)
}

func (j *jsonWriter) field(name string, v any, last bool) {
	j.raw("  \"" + name + "\": ")
	j.value("  ", v)
	if last {
		j.raw("\n")
	} else {
		j.raw(",\n")
	}
}

func (j *jsonWriter) array(name string, n int, elem func(int) any) {
	j.raw("  \"" + name + "\": ")
	if n == 0 {
		j.raw("[],\n")
		return
	}
	j.raw("[\n")
	for i := 0; i < n; i++ {
		j.raw("    ")
		j.value("    ", elem(i))
		if i < n-1 {
			j.raw(",\n")
		}
	}
	j.raw("\n  ],\n")
}

// TableOptions tunes the human-readable report.
type TableOptions struct {
	// All lists every record; otherwise successful records beyond
	// MaxQuiet are summarised in one line (failures are always listed).
	All      bool
	MaxQuiet int
}

// WriteTable writes r for people: the headline first, then the outbound
// connections, the lookups, loopback traffic, hints and what was counted.
func WriteTable(w io.Writer, r *Report, opt TableOptions) error {
	if opt.MaxQuiet <= 0 {
		opt.MaxQuiet = 40
	}
	ew := &errWriter{w: w}
	ew.printf("%s\n", Safe(r.Headline))
	if r.Source != "" {
		ew.printf("source: %s", Safe(r.Source))
		if r.Backend != "" {
			ew.printf(" (%s)", Safe(r.Backend))
		}
		ew.printf("\n")
	}
	for _, e := range r.Errors {
		ew.printf("error: %s\n", Safe(e))
	}
	origin := r.Window.Start

	var egress, loop []Connection
	for _, c := range r.Connections {
		if c.Loopback {
			loop = append(loop, c)
		} else {
			egress = append(egress, c)
		}
	}
	// A busy capture (several hosts, or more calls than fit) is shown
	// grouped: failures first, one row per destination, successes summed
	// up; --all lists every record.
	grouped := !opt.All && (r.HostsSeen > 1 || len(egress) > opt.MaxQuiet || len(r.Lookups) > opt.MaxQuiet)
	ew.printf("\nOutbound connections (%s)\n", callsText(len(egress), connCalls(egress)))
	switch {
	case len(egress) == 0:
	case grouped:
		ew.err = groupedConnTable(ew, egress)
	default:
		ew.err = connTable(ew, egress, origin, opt)
	}
	ew.printf("\nDNS lookups (%s)\n", callsText(len(r.Lookups), lookupCalls(r.Lookups)))
	switch {
	case len(r.Lookups) == 0 || ew.err != nil:
	case grouped:
		ew.err = groupedLookupTable(ew, r.Lookups)
	default:
		ew.err = lookupTable(ew, r.Lookups, origin, opt)
	}
	if len(loop) > 0 && ew.err == nil {
		ew.printf("\nLoopback connections (%d, local services, not egress)\n", len(loop))
		ew.err = connTable(ew, loop, origin, opt)
	}
	if len(r.Hints) > 0 {
		ew.printf("\nHints\n")
		for _, h := range r.Hints {
			ew.printf("  - %s\n", Safe(h.Text))
		}
	}
	s := r.Stats
	ew.printf("\nlocal addresses (%s): %s\n", r.Local.Basis, localList(r.Local.Addresses))
	ew.printf("read %d packets (%s); undecodable %d, truncated %d, flows evicted %d, lookups evicted %d, names evicted %d, records folded %d, dropped %d, events lost %d, inbound attempts %d\n",
		s.Packets, bytesText(s.Bytes), s.Undecodable, s.Truncated, s.FlowsEvicted, s.LookupsEvicted, s.NamesEvicted,
		s.RecordsFolded, s.RecordsDropped, s.EventsLost, s.InboundAttempts)
	return ew.err
}

func localList(a []string) string {
	if len(a) == 0 {
		return "all"
	}
	if len(a) > 8 {
		return strings.Join(a[:8], ", ") + fmt.Sprintf(" and %d more", len(a)-8)
	}
	return strings.Join(a, ", ")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func quiet(outcome Outcome) bool {
	return outcome == Established || outcome == Answered
}

// hasCallers says whether any call has a call site: the "called from"
// column is shown only then, so reports without --stacks look as before.
func hasCallers(cs []Connection) bool {
	for _, c := range cs {
		if c.CalledFrom != "" {
			return true
		}
	}
	return false
}

func connTable(w io.Writer, cs []Connection, origin time.Time, opt TableOptions) error {
	t := tablewriter.NewWriter(w)
	callers := hasCallers(cs)
	header := []any{"start", "process", "host", "destination", "syns", "outcome", "blocked"}
	if callers {
		header = append(header, "called from")
	}
	t.Header(header...)
	shown, hidden := 0, 0
	for _, c := range cs {
		if quiet(c.Outcome) && !opt.All {
			if shown >= opt.MaxQuiet {
				hidden++
				continue
			}
			shown++
		}
		host := c.Host
		if host == "" {
			host = "-"
		} else if c.NameSource != SourceDNS {
			host += " (" + c.NameSource + ")"
		}
		out := c.Outcome.String()
		if c.ICMP != nil {
			out += ": " + c.ICMP.Meaning
		}
		blocked := durText(c.BlockedMS)
		if c.Inferred {
			blocked = "~" + blocked
		}
		if c.Count > 1 {
			out += fmt.Sprintf(" x%d", c.Count)
		}
		out += c.Verdict.mark()
		dest := joinHostPort(c.DstIP, c.DstPort)
		if c.IsCatchAll() { // no address, no port: how many it stands for
			host, dest = "-", fmt.Sprintf("%d other destinations", c.Destinations)
		}
		row := []any{rel(c.Start, origin), proc(c.PID, c.Comm), Safe(host),
			dest, fmt.Sprint(c.Attempts), Safe(out), blocked}
		if callers {
			row = append(row, Safe(orDash(c.CalledFrom)))
		}
		if err := t.Append(row...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if hidden > 0 {
		if _, err := fmt.Fprintf(w, "  ... and %d more successful connections (--all lists them)\n", hidden); err != nil {
			return err
		}
	}
	return knownPhoneHomes(w, cs)
}

// knownPhoneHomes lists the catalog's labels of the calls, once each.
func knownPhoneHomes(w io.Writer, cs []Connection) error {
	seen := map[string]bool{}
	for _, c := range cs {
		if c.Verdict == nil || c.Verdict.Catalog == "" || seen[c.Verdict.Catalog] {
			continue
		}
		seen[c.Verdict.Catalog] = true
		if _, err := fmt.Fprintf(w, "  known phone-home: %s: %s\n", Safe(orDash(c.Host)), Safe(c.Verdict.Catalog)); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func lookupTable(w io.Writer, ls []Lookup, origin time.Time, opt TableOptions) error {
	t := tablewriter.NewWriter(w)
	t.Header("start", "process", "name", "type", "server", "tries", "outcome", "answers", "blocked")
	shown, hidden := 0, 0
	for _, l := range ls {
		if quiet(l.Outcome) && !opt.All {
			if shown >= opt.MaxQuiet {
				hidden++
				continue
			}
			shown++
		}
		ans := strings.Join(l.Answers, " ")
		if len(l.Answers) > 3 {
			ans = strings.Join(l.Answers[:3], " ") + fmt.Sprintf(" +%d", len(l.Answers)-3)
		}
		if ans == "" {
			ans = "-"
		}
		blocked := durText(l.BlockedMS)
		if l.Inferred {
			blocked = "~" + blocked
		}
		out := l.Outcome.String()
		if l.Count > 1 {
			out += fmt.Sprintf(" x%d", l.Count)
		}
		out += l.Verdict.mark()
		server := addrPortText(l.Server)
		if l.Transport == "tcp" {
			server += "/tcp"
		}
		name := l.Name
		if l.IsCatchAll() {
			name = fmt.Sprintf("%d other names", l.Destinations)
		}
		if err := t.Append(rel(l.Start, origin), proc(l.PID, l.Comm), Safe(name), l.QType, server,
			fmt.Sprint(l.Attempts), Safe(out), ans, blocked); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if hidden > 0 {
		if _, err := fmt.Fprintf(w, "  ... and %d more answered lookups (--all lists them)\n", hidden); err != nil {
			return err
		}
	}
	// The labels of names that got no answer (refused names have no
	// connection to carry them), once each.
	seen := map[string]bool{}
	for _, l := range ls {
		if quiet(l.Outcome) || l.Outcome == NoData || l.Verdict == nil || l.Verdict.Catalog == "" || seen[l.Verdict.Catalog] {
			continue
		}
		seen[l.Verdict.Catalog] = true
		if _, err := fmt.Fprintf(w, "  known phone-home: %s: %s\n", Safe(l.Name), Safe(l.Verdict.Catalog)); err != nil {
			return err
		}
	}
	return nil
}

func joinHostPort(ip netip.Addr, port uint16) string {
	if ip.Is6() {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", addrText(ip), port)
}

// addrText is a's text, "" for none (a catch-all has no address), as on
// the wire.
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// addrPortText is a's text, "" for none.
func addrPortText(a netip.AddrPort) string {
	if !a.Addr().IsValid() {
		return ""
	}
	return a.String()
}

func proc(pid *int, comm *string) string {
	switch {
	case pid == nil:
		return "-"
	case comm == nil || *comm == "":
		return fmt.Sprint(*pid)
	}
	return fmt.Sprintf("%s[%d]", Safe(*comm), *pid)
}

func rel(t, origin time.Time) string {
	if origin.IsZero() {
		return t.Format(time.RFC3339)
	}
	return fmt.Sprintf("+%.3fs", t.Sub(origin).Seconds())
}

func durText(msv float64) string {
	switch {
	case msv >= 1000:
		return fmt.Sprintf("%.2f s", msv/1000)
	case msv >= 1:
		return fmt.Sprintf("%.1f ms", msv)
	}
	return fmt.Sprintf("%.3f ms", msv)
}

func bytesText(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// Safe makes attacker-controlled text (host names, SNI, process names)
// harmless on a terminal: control characters, escape sequences and
// invisible formatting runes are shown as \xHH or \u{...}.
func Safe(s string) string {
	clean := true
	for _, r := range s {
		if !safeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == unicode.ReplacementChar && len(s) > i && s[i] >= 0x80:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case safeRune(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u{%x}`, r)
		}
	}
	return b.String()
}

func safeRune(r rune) bool {
	if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == unicode.ReplacementChar {
		return false
	}
	return !unicode.Is(unicode.Cf, r) // bidi overrides, zero-width joiners...
}
