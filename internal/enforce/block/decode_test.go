//go:build linux

package block

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecode(t *testing.T) {
	comm := func(s string) (c [16]int8) {
		for i := range len(s) {
			c[i] = int8(s[i])
		}
		return c
	}
	tests := []struct {
		name string
		rec  blockBlocked
		want Blocked
	}{
		{"ipv4 as mapped", blockBlocked{Ts: 5, Tgid: 42, Port: 443, Proto: 6, Family: 2,
			Addr: netip.MustParseAddr("::ffff:198.51.100.7").As16(), Comm: comm("curl")},
			Blocked{Time: 1005, PID: 42, Comm: "curl", Proto: 6, Dst: netip.MustParseAddrPort("198.51.100.7:443")}},
		{"ipv6, full comm", blockBlocked{Ts: 7, Tgid: 1, Port: 53, Proto: 17, Family: 10,
			Addr: netip.MustParseAddr("2001:db8::5").As16(), Comm: comm("abcdefghijklmnop")},
			Blocked{Time: 1007, PID: 1, Comm: "abcdefghijklmnop", Proto: 17, Dst: netip.MustParseAddrPort("[2001:db8::5]:53")}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := binary.Write(&buf, binary.LittleEndian, &tt.rec); err != nil {
			t.Fatal(err)
		}
		got, err := decode(buf.Bytes(), 1000)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, err := decode(make([]byte, 10), 0); err == nil {
		t.Errorf("a short record decoded without error")
	}
}
