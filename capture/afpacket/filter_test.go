package afpacket

import (
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

const (
	v4UDP  = "4500 0033 0001 4000 4011 0000 c612 0002 c612 0001" // 198.18.0.2 -> 198.18.0.1, UDP
	v4TCP  = "4500 0028 0001 4000 4006 0000 c612 0002 c6336400"  // TCP
	v4ICMP = "4500 0038 0001 4000 4001 0000 c6120001 c6120002"   // ICMP
	v6Hdr  = "6000 0000 0014 %02x40 20010db8000100000000000000000002 20010db8000200000000000000000010"
)

func v6(next byte, rest string) []byte {
	h := strings.Replace(v6Hdr, "%02x", hex.EncodeToString([]byte{next}), 1)
	return mustHex(h + rest)
}

func TestFilter(t *testing.T) {
	vm, err := bpf.NewVM(filter(65535))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		keep bool
	}{
		{"udp query to 53", mustHex(v4UDP + "9c40 0035 001f 0000 1234"), true},
		{"udp answer from 53", mustHex(v4UDP + "0035 9c40 001f 0000 1234"), true},
		{"udp to 443 (QUIC)", mustHex(v4UDP + "9c40 01bb 001f 0000"), false},
		{"tcp to 53", mustHex(v4TCP + "9c40 0035 00000001 00000000 5002 faf0 0000 0000"), true},
		{"tcp to 80", mustHex(v4TCP + "9c40 0050 00000001 00000000 5002 faf0 0000 0000"), false},
		{"ipv4 options, udp to 53", mustHex("4600 0037 0001 4000 4011 0000 c612 0002 c612 0001 01010101 9c40 0035 001f 0000"), true},
		{"ipv4 non-first fragment", mustHex("4500 0033 0001 00b9 4011 0000 c612 0002 c612 0001 deadbeef"), true},
		{"icmp port unreachable", mustHex(v4ICMP + "0303 0000 00000000 4500"), true},
		{"icmp admin prohibited", mustHex(v4ICMP + "030d 0000 00000000 4500"), true},
		{"icmp echo request", mustHex(v4ICMP + "0800 0000 00010001"), false},
		{"ipv6 udp to 53", v6(17, "9c40 0035 0014 0000"), true},
		{"ipv6 tcp from 53", v6(6, "0035 9c40 00000001 00000000 5012 faf0 0000 0000"), true},
		{"ipv6 tcp to 443", v6(6, "9c40 01bb 00000001 00000000 5002 faf0 0000 0000"), false},
		{"icmpv6 unreachable", v6(58, "0104 0000 00000000"), true},
		{"icmpv6 neighbour solicitation", v6(58, "8700 0000 00000000"), false},
		{"ipv6 fragment", v6(44, "1100 0001 00000001"), true},
		{"arp-ish garbage", mustHex("0001 0800 0604 0001"), false},
		{"empty", nil, false},
	} {
		n, err := vm.Run(tc.pkt)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := n > 0; got != tc.keep {
			t.Errorf("%s: kept %v (%d bytes), want %v", tc.name, got, n, tc.keep)
		}
	}
}
