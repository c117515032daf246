package afpacket

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// filter is the classic BPF program that keeps DNS (UDP or TCP, port 53,
// either side) and ICMP/ICMPv6 errors (destination unreachable, packet too
// big, time exceeded), plus IPv4 non-first fragments and IPv6 fragments of
// anything, since a large DNS answer may be fragmented and only the first
// fragment has ports. An AF_PACKET SOCK_DGRAM socket runs it on the packet
// from its network header, so offsets are IP offsets.
//
// The program is written with labels, resolved by assemble, because
// hand-counted jump offsets are how filters go wrong.
func filter(snap uint32) []bpf.Instruction {
	return assemble([]step{
		{in: bpf.LoadAbsolute{Off: 0, Size: 1}},
		{in: bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0}},
		{jeq: 0x40, to: "v4"},
		{jeq: 0x60, to: "v6"},
		{in: bpf.RetConstant{Val: 0}},

		{label: "v4", in: bpf.LoadAbsolute{Off: 9, Size: 1}},
		{jeq: 1, to: "icmp4"},
		{jeq: 6, to: "l4v4"},
		{jeq: 17, to: "l4v4"},
		{in: bpf.RetConstant{Val: 0}},
		{label: "l4v4", in: bpf.LoadAbsolute{Off: 6, Size: 2}},
		{jset: 0x1fff, to: "accept"}, // a non-first fragment
		{in: bpf.LoadMemShift{Off: 0}},
		{in: bpf.LoadIndirect{Off: 0, Size: 2}},
		{jeq: 53, to: "accept"},
		{in: bpf.LoadIndirect{Off: 2, Size: 2}},
		{jeq: 53, to: "accept"},
		{in: bpf.RetConstant{Val: 0}},
		{label: "icmp4", in: bpf.LoadMemShift{Off: 0}},
		{in: bpf.LoadIndirect{Off: 0, Size: 1}},
		{jeq: 3, to: "accept"},  // destination unreachable
		{jeq: 11, to: "accept"}, // time exceeded
		{in: bpf.RetConstant{Val: 0}},

		{label: "v6", in: bpf.LoadAbsolute{Off: 6, Size: 1}},
		{jeq: 6, to: "l4v6"},
		{jeq: 17, to: "l4v6"},
		{jeq: 58, to: "icmp6"},
		{jeq: 44, to: "accept"}, // fragment header
		{in: bpf.RetConstant{Val: 0}},
		{label: "l4v6", in: bpf.LoadAbsolute{Off: 40, Size: 2}},
		{jeq: 53, to: "accept"},
		{in: bpf.LoadAbsolute{Off: 42, Size: 2}},
		{jeq: 53, to: "accept"},
		{in: bpf.RetConstant{Val: 0}},
		{label: "icmp6", in: bpf.LoadAbsolute{Off: 40, Size: 1}},
		{jeq: 1, to: "accept"}, // destination unreachable
		{jeq: 2, to: "accept"}, // packet too big
		{jeq: 3, to: "accept"}, // time exceeded
		{in: bpf.RetConstant{Val: 0}},

		{label: "accept", in: bpf.RetConstant{Val: snap}},
	})
}

// step is one instruction, or a conditional jump to a label (taken when
// A == jeq, or when A & jset != 0; otherwise fall through).
type step struct {
	label string
	in    bpf.Instruction
	jeq   uint32
	jset  uint32
	to    string
}

func assemble(steps []step) []bpf.Instruction {
	at := map[string]int{}
	for i, s := range steps {
		if s.label != "" {
			at[s.label] = i
		}
	}
	out := make([]bpf.Instruction, len(steps))
	for i, s := range steps {
		if s.to == "" {
			out[i] = s.in
			continue
		}
		t, ok := at[s.to]
		if !ok || t <= i || t-i-1 > 255 {
			panic(fmt.Sprintf("afpacket filter: bad jump from %d to %q", i, s.to))
		}
		skip := uint8(t - i - 1)
		if s.jset != 0 {
			out[i] = bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: s.jset, SkipTrue: skip}
		} else {
			out[i] = bpf.JumpIf{Cond: bpf.JumpEqual, Val: s.jeq, SkipTrue: skip}
		}
	}
	return out
}
