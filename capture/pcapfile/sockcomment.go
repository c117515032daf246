package pcapfile

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
//     behind a captured packet (ParseProcessComment reads it).
//   - A packet comment "egress-sock: kind=connect cookie=... proto=6
//     src=A:P dst=A:P errno=N pid=N comm=X [stack=...]" marks a kernel socket event: the
//     packet itself is synthesized (a SYN, a retransmitted SYN, a SYN-ACK,
//     a RST) so Wireshark shows something sensible, but readers turn it back
//     into an event.Sock, never into a packet. Its time is the packet's.
//   - The section header comment "egress-watch: from=NS to=NS lost=N" holds
//     the live run's window edges (Unix ns) and the events it lost, so a
//     replay of the file can cover the same window and report the same loss.
const (
	sockPrefix  = "egress-sock:"
	procPrefix  = "egress:"
	watchPrefix = "egress-watch:"
)

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
	return fmt.Sprintf("%s pid=%d comm=%s", procPrefix, p.PID, SafeComm(p.Comm))
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
		fmt.Fprintf(&b, " pid=%d comm=%s", s.Proc.PID, SafeComm(s.Proc.Comm))
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
}

// FormatWatchComment is the section header comment that carries w.
func FormatWatchComment(w WatchInfo) string {
	return fmt.Sprintf("%s from=%d to=%d lost=%d", watchPrefix, w.From, w.To, w.Lost)
}

// ParseWatchComment reads a section comment written by FormatWatchComment
// (ok is false for any other comment).
func ParseWatchComment(c string) (w WatchInfo, ok bool) {
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
			}
			if err != nil || v.From < 0 || v.To < 0 {
				return WatchInfo{}, false
			}
		}
		return v, true
	}
	return WatchInfo{}, false
}

// Watch returns what egress watch recorded about the run that wrote this
// file (ok false for other files). Replay uses From and To as its window so
// it reports what the live run did; Lost is already in Stats.
func (r *Reader) Watch() (w WatchInfo, ok bool) { return r.watch, r.watchOK }

// SockSink is an optional extension of Sink: a sink that has it receives
// the socket events of files written by egress watch. Without it, those
// synthesized packets are skipped (and not counted as packets).
type SockSink interface {
	Sock(*event.Sock)
}

// sockEvent handles a packet whose comments mark a socket event: it
// reports whether the packet was one (and so must not be decoded). A
// malformed socket comment is returned as an error for the caller to count.
func (r *Reader) sockEvent(sink Sink, comments []string, t int64) (bool, error) {
	for _, c := range comments {
		if !IsSockComment(c) {
			continue
		}
		s, err := ParseSockComment(c)
		if err != nil {
			return true, err
		}
		s.Time = t
		if ss, ok := sink.(SockSink); ok {
			ss.Sock(s)
		}
		return true, nil
	}
	return false, nil
}
