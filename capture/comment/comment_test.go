package comment

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/event"
)

var addrCmp = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

func TestSockComment(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, s := range []event.Sock{
		{Kind: event.SockConnect, Cookie: 1<<63 | 5, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41000"), Dst: ap("198.51.100.11:443"), Proc: &event.Process{PID: 7, Comm: "shopapp"}},
		{Kind: event.SockError, Cookie: 9, Proto: event.ProtoTCP, Src: ap("[2001:db8:1::2]:1"), Dst: ap("[2001:db8:2::10]:80"), Errno: 113},
		{Kind: event.SockClose, Cookie: 9, Proc: &event.Process{PID: 0, Comm: ""}},
		{Kind: event.SockConnect, Cookie: 3, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41001"), Dst: ap("198.51.100.11:443"), Proc: &event.Process{PID: 8, Comm: "curl", Parent: 7}},
		{Kind: event.SockConnect, Cookie: 3, Proto: event.ProtoTCP, Src: ap("198.18.0.2:41000"), Dst: ap("198.51.100.10:80"), Proc: &event.Process{PID: 8, Comm: "stackapp"},
			Stack: []event.Frame{
				{Function: "syscall.connect", File: "/usr/local/go/src/syscall/zsyscall_linux_amd64.go", Line: 1422, Module: "/tmp/stack app", Offset: 0x49d408},
				{Function: "main.(*T).f|g;h=1%", File: "C:\\a b.go", Line: 36, Module: "/tmp/stack app", Offset: 0x4ec150},
				{Module: "[anon]", Offset: 0x7f0000001000},
				{Function: "phoneHome", File: "/app/phone home.js", Line: 15, Module: "[jit]", Offset: 0x7f7cb8050e5b},
			}},
	} {
		c := FormatSockComment(&s)
		got, err := ParseSockComment(c)
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		if diff := cmp.Diff(&s, got, addrCmp); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c, diff)
		}
	}
	for _, bad := range []string{
		"egress: pid=1 comm=x",
		"egress-sock: cookie=1",
		"egress-sock: kind=connect cookie=-1",
		"egress-sock: kind=explode",
		"egress-sock: kind=connect src=1.2.3.4",
		"egress-sock: kind=connect pid=-4",
		"egress-sock: kind=connect pid=4 ppid=-1",
		"egress-sock: kind=connect junk",
		"egress-sock: kind=connect stack=",
		"egress-sock: kind=connect stack=a;b;1;c",
		"egress-sock: kind=connect stack=a;b;-1;c;0x1",
		"egress-sock: kind=connect stack=a;b;1;c;zz",
		"egress-sock: kind=connect stack=%zz;b;1;c;0x1",
	} {
		if s, err := ParseSockComment(bad); err == nil {
			t.Errorf("ParseSockComment(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestWatchComment(t *testing.T) {
	w := WatchInfo{From: 1_700_000_000_123_456_789, To: 1_700_000_009_000_000_001, Lost: 12}
	got, ok := ParseWatchComment("written by egress\n" + FormatWatchComment(w))
	if !ok || !reflect.DeepEqual(got, w) {
		t.Errorf("got %+v %v, want %+v", got, ok, w)
	}
	// Hints round-trip whatever their text holds; a field past maxHintLen
	// is cut, and past maxHints the rest are left out.
	w.Hints = []Hint{{"confined", "curl", "dropped: NET_RAW, \"SYS_ADMIN\"\nkept: none"}, {"stopped", "", "égress \x00 \\"}}
	got, ok = ParseWatchComment(FormatWatchComment(w))
	if !ok || !reflect.DeepEqual(got, w) {
		t.Errorf("with hints: got %+v %v, want %+v", got, ok, w)
	}
	long := WatchInfo{Hints: make([]Hint, maxHints+5)}
	long.Hints[0].Text = strings.Repeat("x", 3*maxHintLen)
	got, ok = ParseWatchComment(FormatWatchComment(long))
	if !ok || len(got.Hints) != maxHints || len(got.Hints[0].Text) != maxHintLen {
		t.Errorf("long hints: ok %v, %d hints, first %d bytes; want %d hints, %d bytes", ok, len(got.Hints), len(got.Hints[0].Text), maxHints, maxHintLen)
	}
	if got, ok := ParseWatchComment("egress-watch: from=1 to=2 lost=0\negress-hint \"a\" \"b\"\negress-hint \"a\" \"b\" \"c\" junk"); !ok || len(got.Hints) != 0 {
		t.Errorf("malformed hint lines: got %+v %v, want the window and no hints", got, ok)
	}
	for _, bad := range []string{"", "egress-watch: from=x", "egress-watch: to=-5", "Sample capture"} {
		if got, ok := ParseWatchComment(bad); ok {
			t.Errorf("ParseWatchComment(%q) = %+v, want not ok", bad, got)
		}
	}
}

func TestSafeComm(t *testing.T) {
	for in, want := range map[string]string{
		"php-fpm":       "php-fpm",
		"Web Content":   "Web_Content",
		"a=b\tc\n":      "a_b_c_",
		"\xff\x00x":     "__x",
		"kworker/0:1H+": "kworker/0:1H+",
	} {
		if got := SafeComm(in); got != want {
			t.Errorf("SafeComm(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseSockComment: comments come from files of any origin. Whatever
// parses must format back to something that parses to the same event.
func FuzzParseSockComment(f *testing.F) {
	// Real comments written by egress watch on the DROP story.
	f.Add("egress-sock: kind=connect cookie=18446619703917651712 proto=6 src=198.18.0.2:45678 dst=198.51.100.11:443 errno=0 pid=1234 comm=shopapp")
	f.Add("egress-sock: kind=retransmit cookie=18446619703917651712 proto=6 src=198.18.0.2:45678 dst=198.51.100.11:443 errno=0 pid=0 comm=swapper/1")
	f.Add("egress-sock: kind=error cookie=5 proto=6 src=[2001:db8:1::2]:41001 dst=[2001:db8:2::10]:80 errno=111")
	f.Add("egress-sock: kind=close cookie=1 proto=6 src=0.0.0.0:0 dst=0.0.0.0:0 errno=0")
	f.Add("egress-sock: kind=connect cookie=7 proto=6 src=198.18.0.2:50001 dst=198.18.5.5:443 errno=0 pid=31045 comm=telemetry-curl ppid=31040")
	f.Add("egress-sock: kind=connect cookie=3 proto=6 src=198.18.0.2:41000 dst=198.51.100.10:80 errno=0 pid=8 comm=stackapp stack=syscall.connect;%2Fusr%2Flocal%2Fgo%2Fsrc%2Fsyscall%2Fzsyscall_linux_amd64.go;1422;%2Ftmp%2Fstackapp;0x49d408|main.checkForUpdates;%2Fsrc%2Fmain.go;36;%2Ftmp%2Fstackapp;0x4ec150|;;0;%5Banon%5D;0x7f0000001000")
	f.Fuzz(func(t *testing.T, c string) {
		s, err := ParseSockComment(c)
		if err != nil {
			return
		}
		if s.Proc != nil {
			s.Proc.Comm = SafeComm(s.Proc.Comm)
		}
		again, err := ParseSockComment(FormatSockComment(s))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", FormatSockComment(s), err)
		}
		if diff := cmp.Diff(s, again, addrCmp); diff != "" {
			t.Errorf("round trip of %q (-first +second):\n%s", c, diff)
		}
	})
}

// FuzzParseActivityComment: scheduler comments come from files of any
// origin; whatever parses formats back to the same change.
func FuzzParseActivityComment(f *testing.F) {
	f.Add("egress-sched: running=1")
	f.Add("egress-sched: running=0")
	f.Add("egress-sched: running=2")
	f.Fuzz(func(t *testing.T, c string) {
		a, err := ParseActivityComment(c)
		if err != nil {
			return
		}
		again, err := ParseActivityComment(FormatActivityComment(&a))
		if err != nil || again != a {
			t.Fatalf("round trip of %q: %+v, %v", c, again, err)
		}
	})
}

func TestProcessComment(t *testing.T) {
	tests := []struct {
		in   string
		want *event.Process
	}{
		{"egress: pid=123 comm=php-fpm", &event.Process{PID: 123, Comm: "php-fpm"}},
		{"egress: pid=124 comm=curl ppid=123", &event.Process{PID: 124, Comm: "curl", Parent: 123}},
		{FormatProcessComment(&event.Process{PID: 9, Comm: "a b", Parent: 2}), &event.Process{PID: 9, Comm: "a_b", Parent: 2}},
		{"PID: 77\nCommand: curl", &event.Process{PID: 77, Comm: "curl"}},
		{"just a note", nil},
		{"pid=-4", nil},
	}
	for _, tc := range tests {
		got := ParseProcessComment(tc.in)
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("ParseProcessComment(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDNSAndBlockedComments(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, d := range []event.DNS{
		{Client: ap("127.0.0.1:40000"), Server: ap("198.18.0.1:53"), Proc: &event.Process{PID: 7, Comm: "curl"}},
		{Client: ap("[::1]:5"), Server: ap("[2001:db8::53]:53"), Response: true, TCP: true, Refused: true},
	} {
		c := FormatDNSComment(&d)
		got, err := ParseDNSComment(c)
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		if diff := cmp.Diff(&d, got, addrCmp); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c, diff)
		}
	}
	for _, b := range []event.Blocked{
		{Proto: event.ProtoTCP, Dst: ap("198.51.100.10:443"), Proc: &event.Process{PID: 9, Comm: "npm"}},
		{Proto: event.ProtoUDP, Dst: ap("[2001:db8::1]:123")},
		{Kind: event.BlockedConn, Proto: event.ProtoTCP, Dst: ap("198.51.100.10:80"), SkType: 1, UID: 65534, ConnOp: event.ConnRetransmit, Cookie: 1 << 60},
		{Kind: event.BlockedPacket, Proto: event.ProtoICMP, Dst: ap("198.51.100.8:0"), Refused: true, SkType: 2},
	} {
		c := FormatBlockedComment(&b)
		got, err := ParseBlockedComment(c)
		if err != nil {
			t.Fatalf("%q: %v", c, err)
		}
		if diff := cmp.Diff(&b, got, addrCmp); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c, diff)
		}
	}
	for _, bad := range []string{"egress-dns: tcp=2", "egress-dns: client=x", "egress-dns: junk", "egress-sock: kind=connect"} {
		if d, err := ParseDNSComment(bad); err == nil {
			t.Errorf("ParseDNSComment(%q) = %+v, want an error", bad, d)
		}
	}
	for _, bad := range []string{"egress-blocked: proto=6", "egress-blocked: proto=600 dst=1.2.3.4:5", "egress-blocked: dst=1.2.3.4:5 pid=-1"} {
		if b, err := ParseBlockedComment(bad); err == nil {
			t.Errorf("ParseBlockedComment(%q) = %+v, want an error", bad, b)
		}
	}
	w := WatchInfo{From: 1, To: 0, Lost: 2, LocalAny: true}
	if got, ok := ParseWatchComment(FormatWatchComment(w)); !ok || !reflect.DeepEqual(got, w) {
		t.Errorf("watch comment with local=any: got %+v %v", got, ok)
	}
}

// FuzzParseEventComments: whatever parses formats back to the same event.
func FuzzParseEventComments(f *testing.F) {
	f.Add("egress-dns: client=127.0.0.1:40000 server=198.18.0.1:53 response=1 tcp=0 refused=0 pid=7 comm=curl")
	f.Add("egress-blocked: proto=17 dst=[2001:db8::1]:123 pid=9 comm=npm")
	f.Add("egress-blocked: kind=4 proto=6 dst=198.51.100.10:80 refused=0 sktype=1 uid=65534 connop=3 cookie=99 pid=9 comm=npm")
	f.Fuzz(func(t *testing.T, c string) {
		if d, err := ParseDNSComment(c); err == nil {
			if d.Proc != nil {
				d.Proc.Comm = SafeComm(d.Proc.Comm)
			}
			again, err := ParseDNSComment(FormatDNSComment(d))
			if err != nil {
				t.Fatalf("re-parsing %q: %v", FormatDNSComment(d), err)
			}
			if diff := cmp.Diff(d, again, addrCmp); diff != "" {
				t.Errorf("round trip of %q (-first +second):\n%s", c, diff)
			}
		}
		if b, err := ParseBlockedComment(c); err == nil {
			if b.Proc != nil {
				b.Proc.Comm = SafeComm(b.Proc.Comm)
			}
			again, err := ParseBlockedComment(FormatBlockedComment(b))
			if err != nil {
				t.Fatalf("re-parsing %q: %v", FormatBlockedComment(b), err)
			}
			if diff := cmp.Diff(b, again, addrCmp); diff != "" {
				t.Errorf("round trip of %q (-first +second):\n%s", c, diff)
			}
		}
	})
}

// FuzzParseWatchComment: a section comment from a file is untrusted; what
// parses must write back and parse to the same WatchInfo, within bounds.
func FuzzParseWatchComment(f *testing.F) {
	f.Add("egress-watch: from=1 to=2 lost=3 local=any proxy=53 lookups=calls")
	f.Add(FormatWatchComment(WatchInfo{From: 5, Hints: []Hint{{"confinement", "sh", "dropped \"NET_RAW\"\nkept none"}}}))
	f.Add("egress-hint \"a\" \"b\" \"c\"\negress-watch: from=9")
	f.Fuzz(func(t *testing.T, c string) {
		w, ok := ParseWatchComment(c)
		if !ok {
			return
		}
		if len(w.Hints) > maxHints {
			t.Fatalf("%d hints, bound %d", len(w.Hints), maxHints)
		}
		again, ok := ParseWatchComment(FormatWatchComment(w))
		if !ok {
			t.Fatalf("%+v does not parse back", w)
		}
		for i := range w.Hints {
			w.Hints[i] = Hint{clip(w.Hints[i].Kind), clip(w.Hints[i].Subject), clip(w.Hints[i].Text)}
		}
		if len(w.Hints) == 0 {
			w.Hints = nil
		}
		if !reflect.DeepEqual(again, w) {
			t.Fatalf("round trip: got %+v, want %+v", again, w)
		}
	})
}
