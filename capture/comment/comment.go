// Package comment is the codec of the comments egress puts into the pcapng
// files it writes: the process behind a packet, kernel socket events, DNS
// messages relayed by egress run's proxy, calls its blocker refused, and the
// window of the run in the section header. The writer (capture/pcapng) and
// the reader (capture/pcapfile) share it, so neither imports the other.
package comment

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/egress-dev/egress/event"
)

// The comments egress watch --write puts into a pcapng file.
//
//   - A packet comment "egress: pid=123 comm=php-fpm" names the process
//     behind a captured packet (ParseProcessComment reads it); " ppid=N"
//     follows where the parent is known (in socket comments too).
//   - A packet comment "egress-sock: kind=connect cookie=... proto=6
//     src=A:P dst=A:P errno=N pid=N comm=X [stack=...]" marks a kernel socket event: the
//     packet itself is synthesized (a SYN, a retransmitted SYN, a SYN-ACK,
//     a RST) so Wireshark shows something sensible, but readers turn it back
//     into an event.Sock, never into a packet. Its time is the packet's.
//   - A packet comment "egress-dns: client=A:P server=A:P response=0|1
//     tcp=0|1 refused=0|1 pid=N comm=X" marks a DNS message egress run's
//     proxy relayed: the packet is a synthesized UDP datagram whose payload
//     is the message; readers turn it back into an event.DNS.
//   - A packet comment "egress-blocked: kind=N proto=6 dst=A:P refused=0|1
//     sktype=N uid=N connop=N cookie=N pid=N comm=X" marks a call egress
//     run's cgroup programs refused or reported (a synthesized SYN or empty
//     datagram); readers turn it back into an event.Blocked.
//   - A packet comment "egress-sched: running=1" (or 0) marks a change of
//     the scheduler view: from the packet's time on, some watched thread
//     runs, or none does. The packet is an empty cooked header; readers
//     turn it back into an event.Activity.
//   - The section header comment "egress-watch: from=NS to=NS lost=N" holds
//     the live run's window edges (Unix ns) and the events it lost, so a
//     replay of the file can cover the same window and report the same loss.
const (
	sockPrefix  = "egress-sock:"
	procPrefix  = "egress:"
	watchPrefix = "egress-watch:"
	dnsPrefix   = "egress-dns:"
	blockPrefix = "egress-blocked:"
	schedPrefix = "egress-sched:"
)

// IsActivityComment says whether a packet comment marks a scheduler change.
func IsActivityComment(c string) bool { return strings.HasPrefix(c, schedPrefix) }

// FormatActivityComment is the comment of a scheduler change.
func FormatActivityComment(a *event.Activity) string {
	if a.Running {
		return schedPrefix + " running=1"
	}
	return schedPrefix + " running=0"
}

// ParseActivityComment reads a comment FormatActivityComment wrote; the
// time is the packet's, set by the caller.
func ParseActivityComment(c string) (event.Activity, error) {
	switch strings.TrimSpace(strings.TrimPrefix(c, schedPrefix)) {
	case "running=1":
		return event.Activity{Running: true}, nil
	case "running=0":
		return event.Activity{}, nil
	}
	return event.Activity{}, fmt.Errorf("parse scheduler comment %q: want running=0 or running=1", c)
}

var sockKinds = [...]string{
	event.SockConnect:     "connect",
	event.SockRetransmit:  "retransmit",
	event.SockEstablished: "established",
	event.SockReset:       "reset",
	event.SockError:       "error",
	event.SockClose:       "close",
}

// SafeComm makes a command name fit the comment format: spaces, '=' and
// unprintable characters become '_'. egress watch applies it to live events
// too, so a replay of the file names processes exactly as the live run did.
func SafeComm(c string) string {
	ok := true
	for _, r := range c {
		if r == '=' || r == unicode.ReplacementChar || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			ok = false
			break
		}
	}
	if ok {
		return c
	}
	return strings.Map(func(r rune) rune {
		if r == '=' || r == unicode.ReplacementChar || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return '_'
		}
		return r
	}, c)
}

// FormatProcessComment is the packet comment naming p ("" for nil).
func FormatProcessComment(p *event.Process) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%s pid=%d comm=%s", procPrefix, p.PID, SafeComm(p.Comm)) + ppidField(p)
}

// ppidField is " ppid=N" where the parent is known.
func ppidField(p *event.Process) string {
	if p.Parent <= 0 {
		return ""
	}
	return " ppid=" + strconv.Itoa(p.Parent)
}

// FormatSockComment is the packet comment that carries s (all but its time).
func FormatSockComment(s *event.Sock) string {
	var b strings.Builder
	kind := "unknown"
	if int(s.Kind) < len(sockKinds) && sockKinds[s.Kind] != "" {
		kind = sockKinds[s.Kind]
	}
	fmt.Fprintf(&b, "%s kind=%s cookie=%d proto=%d src=%s dst=%s errno=%d",
		sockPrefix, kind, s.Cookie, s.Proto, addrPort(s.Src), addrPort(s.Dst), s.Errno)
	if s.Proc != nil {
		fmt.Fprintf(&b, " pid=%d comm=%s%s", s.Proc.PID, SafeComm(s.Proc.Comm), ppidField(s.Proc))
	}
	if len(s.Stack) > 0 {
		b.WriteString(" stack=")
		writeStack(&b, s.Stack)
	}
	return b.String()
}

// The stack (egress --stacks) is one field: frames innermost first,
// separated by '|', each "function;file;line;module;0xoffset" with every
// part query-escaped, so no space, '|' or ';' of a name breaks the comment.
const maxStackFrames = 128

func writeStack(b *strings.Builder, stack []event.Frame) {
	for i, f := range stack {
		if i == maxStackFrames {
			break
		}
		if i > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(b, "%s;%s;%d;%s;%#x", url.QueryEscape(f.Function), url.QueryEscape(f.File), f.Line,
			url.QueryEscape(f.Module), f.Offset)
	}
}

func parseStack(v string) ([]event.Frame, error) {
	parts := strings.Split(v, "|")
	if len(parts) > maxStackFrames {
		return nil, fmt.Errorf("%d frames, at most %d", len(parts), maxStackFrames)
	}
	stack := make([]event.Frame, 0, len(parts))
	for _, p := range parts {
		fs := strings.Split(p, ";")
		if len(fs) != 5 {
			return nil, fmt.Errorf("frame %q: want function;file;line;module;offset", p)
		}
		var f event.Frame
		var err error
		if f.Function, err = url.QueryUnescape(fs[0]); err != nil {
			return nil, err
		}
		if f.File, err = url.QueryUnescape(fs[1]); err != nil {
			return nil, err
		}
		if f.Line, err = strconv.Atoi(fs[2]); err != nil || f.Line < 0 {
			return nil, fmt.Errorf("frame %q: bad line", p)
		}
		if f.Module, err = url.QueryUnescape(fs[3]); err != nil {
			return nil, err
		}
		if f.Offset, err = strconv.ParseUint(fs[4], 0, 64); err != nil {
			return nil, fmt.Errorf("frame %q: offset: %w", p, err)
		}
		stack = append(stack, f)
	}
	return stack, nil
}

// addrPort writes "-" for an unknown address.
func addrPort(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	if s == "-" {
		return netip.AddrPort{}, nil
	}
	return netip.ParseAddrPort(s)
}

// IsSockComment says whether a packet comment marks a socket event.
func IsSockComment(c string) bool { return strings.HasPrefix(c, sockPrefix) }

// ParseSockComment reads a comment written by FormatSockComment. The
// returned event has no Time: it is the packet's. Unknown keys are ignored,
// so later versions may add some; a missing or malformed known key is an
// error.
func ParseSockComment(c string) (*event.Sock, error) {
	rest, ok := strings.CutPrefix(c, sockPrefix)
	if !ok {
		return nil, errors.New("parse socket comment: no egress-sock: prefix")
	}
	var (
		s                  event.Sock
		p                  event.Process
		haveKind, haveProc bool
	)
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("parse socket comment: field %q is not key=value", f)
		}
		var err error
		switch k {
		case "kind":
			for i, name := range sockKinds {
				if name != "" && name == v {
					s.Kind, haveKind = event.SockKind(i), true
				}
			}
			if !haveKind {
				return nil, fmt.Errorf("parse socket comment: unknown kind %q", v)
			}
		case "cookie":
			s.Cookie, err = strconv.ParseUint(v, 10, 64)
		case "proto":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			s.Proto = uint8(n)
		case "src":
			s.Src, err = parseAddrPort(v)
		case "dst":
			s.Dst, err = parseAddrPort(v)
		case "errno":
			s.Errno, err = strconv.Atoi(v)
		case "pid":
			p.PID, err = strconv.Atoi(v)
			if err == nil && p.PID < 0 {
				err = errors.New("negative")
			}
			haveProc = true
		case "comm":
			p.Comm = v
		case "ppid":
			p.Parent, err = strconv.Atoi(v)
			if err == nil && p.Parent < 0 {
				err = errors.New("negative")
			}
		case "stack":
			s.Stack, err = parseStack(v)
		}
		if err != nil {
			return nil, fmt.Errorf("parse socket comment: %s=%q: %w", k, v, err)
		}
	}
	if !haveKind {
		return nil, errors.New("parse socket comment: no kind")
	}
	if haveProc {
		s.Proc = &p
	}
	return &s, nil
}

// WatchInfo is what egress watch records about its run in the section
// header of the pcapng file it writes.
type WatchInfo struct {
	From, To int64  // window edges, Unix ns (0: not set)
	Lost     uint64 // events the live sources lost
	// LocalAny: every call in the file is the host's own (egress run traces
	// one cgroup), so a replay reports them all, as the live run did.
	LocalAny bool
	// ProxyPort is the port egress run's DNS proxy listened on (0: none),
	// so a replay shows steered DNS connections as the live run did.
	ProxyPort uint16
	// LookupsAreCalls: the run judged lookups as calls (egress run with
	// --rules: a name no host entry allows is unexpected); a replay with
	// the same rules judges them the same way.
	LookupsAreCalls bool
	// Hints are what the live run said that its records cannot: how the
	// command was confined, the DNS proxy's overload, a stop by signal,
	// the catch-all's protocols (report.Hint's fields), so a replay says
	// it too. At most maxHints, each field at most maxHintLen bytes.
	Hints []Hint
}

// Hint is a report hint carried in the section header.
type Hint struct{ Kind, Subject, Text string }

const (
	hintPrefix = "egress-hint"
	maxHints   = 64
	maxHintLen = 4096
)

// FormatWatchComment is the section header comment that carries w.
func FormatWatchComment(w WatchInfo) string {
	c := fmt.Sprintf("%s from=%d to=%d lost=%d", watchPrefix, w.From, w.To, w.Lost)
	if w.LocalAny {
		c += " local=any"
	}
	if w.ProxyPort != 0 {
		c += fmt.Sprintf(" proxy=%d", w.ProxyPort)
	}
	if w.LookupsAreCalls {
		c += " lookups=calls"
	}
	for i, h := range w.Hints {
		if i == maxHints {
			break
		}
		c += "\n" + hintPrefix + " " + strconv.Quote(clip(h.Kind)) + " " + strconv.Quote(clip(h.Subject)) + " " + strconv.Quote(clip(h.Text))
	}
	return c
}

func clip(s string) string {
	if len(s) > maxHintLen {
		return s[:maxHintLen]
	}
	return s
}

// parseHint reads the three quoted fields after hintPrefix.
func parseHint(rest string) (Hint, bool) {
	var f [3]string
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		q, err := strconv.QuotedPrefix(rest)
		if err != nil || len(q) > 4*maxHintLen+2 {
			return Hint{}, false
		}
		if f[i], err = strconv.Unquote(q); err != nil {
			return Hint{}, false
		}
		rest = rest[len(q):]
	}
	if strings.TrimSpace(rest) != "" {
		return Hint{}, false
	}
	return Hint{Kind: f[0], Subject: f[1], Text: f[2]}, true
}

// ParseWatchComment reads a section comment written by FormatWatchComment
// (ok is false for any other comment).
func ParseWatchComment(c string) (w WatchInfo, ok bool) {
	var hints []Hint
	for _, line := range strings.Split(c, "\n") {
		if rest, found := strings.CutPrefix(strings.TrimSpace(line), hintPrefix+" "); found {
			if h, ok := parseHint(rest); ok && len(hints) < maxHints {
				hints = append(hints, h)
			}
		}
	}
	for _, line := range strings.Split(c, "\n") {
		rest, found := strings.CutPrefix(strings.TrimSpace(line), watchPrefix)
		if !found {
			continue
		}
		var v WatchInfo
		for _, f := range strings.Fields(rest) {
			k, val, _ := strings.Cut(f, "=")
			var err error
			switch k {
			case "from":
				v.From, err = strconv.ParseInt(val, 10, 64)
			case "to":
				v.To, err = strconv.ParseInt(val, 10, 64)
			case "lost":
				v.Lost, err = strconv.ParseUint(val, 10, 64)
			case "local":
				v.LocalAny = val == "any"
			case "lookups":
				v.LookupsAreCalls = val == "calls"
			case "proxy":
				var n uint64
				n, err = strconv.ParseUint(val, 10, 16)
				v.ProxyPort = uint16(n)
			}
			if err != nil || v.From < 0 || v.To < 0 {
				return WatchInfo{}, false
			}
		}
		v.Hints = hints
		return v, true
	}
	return WatchInfo{}, false
}

// ParseProcessComment extracts a process from a packet comment, or nil.
func ParseProcessComment(c string) *event.Process {
	var p event.Process
	found := false
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") {
			switch strings.ToLower(k) {
			case "pid":
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
					p.PID, found = n, true
				}
				continue
			case "cmd", "command", "comm":
				p.Comm = strings.TrimSpace(v)
				continue
			}
		}
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			switch k {
			case "pid":
				if n, err := strconv.Atoi(v); err == nil && n >= 0 {
					p.PID, found = n, true
				}
			case "comm":
				p.Comm = v
			case "ppid":
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					p.Parent = n
				}
			}
		}
	}
	if !found {
		return nil
	}
	return &p
}

// IsDNSComment says whether a packet comment marks a relayed DNS message.
func IsDNSComment(c string) bool { return strings.HasPrefix(c, dnsPrefix) }

// FormatDNSComment is the packet comment that carries d (all but its time
// and its message, which is the packet's payload).
func FormatDNSComment(d *event.DNS) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s client=%s server=%s response=%d tcp=%d refused=%d",
		dnsPrefix, addrPort(d.Client), addrPort(d.Server), b2i(d.Response), b2i(d.TCP), b2i(d.Refused))
	if d.Proc != nil {
		fmt.Fprintf(&b, " pid=%d comm=%s", d.Proc.PID, SafeComm(d.Proc.Comm))
	}
	return b.String()
}

// ParseDNSComment reads a comment written by FormatDNSComment; Time and
// Msg are left for the caller (the packet's time and payload).
func ParseDNSComment(c string) (*event.DNS, error) {
	var d event.DNS
	err := fields(c, dnsPrefix, "dns", func(k, v string) (err error) {
		switch k {
		case "client":
			d.Client, err = parseAddrPort(v)
		case "server":
			d.Server, err = parseAddrPort(v)
		case "response":
			d.Response, err = parseBit(v)
		case "tcp":
			d.TCP, err = parseBit(v)
		case "refused":
			d.Refused, err = parseBit(v)
		}
		return err
	}, &d.Proc)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// IsBlockedComment says whether a packet comment marks a refused call.
func IsBlockedComment(c string) bool { return strings.HasPrefix(c, blockPrefix) }

// FormatBlockedComment is the packet comment that carries b (all but its
// time).
func FormatBlockedComment(b *event.Blocked) string {
	c := fmt.Sprintf("%s kind=%d proto=%d dst=%s refused=%d sktype=%d uid=%d connop=%d cookie=%d", blockPrefix,
		b.Kind, b.Proto, addrPort(b.Dst), b2i(b.Refused), b.SkType, b.UID, b.ConnOp, b.Cookie)
	if b.Proc != nil {
		c += fmt.Sprintf(" pid=%d comm=%s", b.Proc.PID, SafeComm(b.Proc.Comm))
	}
	return c
}

// ParseBlockedComment reads a comment written by FormatBlockedComment.
func ParseBlockedComment(c string) (*event.Blocked, error) {
	var b event.Blocked
	haveDst := false
	err := fields(c, blockPrefix, "blocked", func(k, v string) (err error) {
		switch k {
		case "proto":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			b.Proto = uint8(n)
		case "dst":
			b.Dst, err = parseAddrPort(v)
			haveDst = true
		case "kind", "sktype", "connop":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			switch k {
			case "kind":
				b.Kind = event.BlockedKind(n)
			case "sktype":
				b.SkType = uint8(n)
			default:
				b.ConnOp = uint8(n)
			}
		case "refused":
			b.Refused, err = parseBit(v)
		case "uid":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			b.UID = uint32(n)
		case "cookie":
			b.Cookie, err = strconv.ParseUint(v, 10, 64)
		}
		return err
	}, &b.Proc)
	if err == nil && !haveDst {
		err = errors.New("parse blocked comment: no dst")
	}
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// fields parses "prefix k=v k=v ...": pid and comm into *proc, the rest
// through field. Unknown keys are ignored, so later versions may add some.
func fields(c, prefix, what string, field func(k, v string) error, proc **event.Process) error {
	rest, ok := strings.CutPrefix(c, prefix)
	if !ok {
		return fmt.Errorf("parse %s comment: no %s prefix", what, prefix)
	}
	var p event.Process
	haveProc := false
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("parse %s comment: field %q is not key=value", what, f)
		}
		var err error
		switch k {
		case "pid":
			p.PID, err = strconv.Atoi(v)
			if err == nil && p.PID < 0 {
				err = errors.New("negative")
			}
			haveProc = true
		case "comm":
			p.Comm = v
		default:
			err = field(k, v)
		}
		if err != nil {
			return fmt.Errorf("parse %s comment: %s=%q: %w", what, k, v, err)
		}
	}
	if haveProc {
		*proc = &p
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func parseBit(v string) (bool, error) {
	switch v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, errors.New("want 0 or 1")
}
