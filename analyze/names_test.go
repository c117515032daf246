package analyze

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// pr is a process of unknown parent (nil for pid 0).
func pr(pid int) *event.Process {
	if pid == 0 {
		return nil
	}
	return &event.Process{PID: pid}
}

// child is a process with a known parent.
func child(pid, parent int) *event.Process { return &event.Process{PID: pid, Parent: parent} }

// shared is the one address a stand-in internet (or a CDN) answers for
// every name.
var shared = netip.MustParseAddr("198.18.7.7")

// TestNamesFollowTheAsker: 16 processes each look up one of two names
// that share one address, the answers interleave, and every process then
// connects: each call is named by its own process's lookup, whatever the
// order of the answers and connects. A repeated answer to one process
// does not take a name from another.
func TestNamesFollowTheAsker(t *testing.T) {
	names := []string{"telemetry.nextjs.org", "registry.npmjs.org"}
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var pkts []*event.Packet
		type call struct {
			pid  int
			name string
		}
		var calls []call
		for i := range 16 {
			calls = append(calls, call{pid: 1000 + i, name: names[i%2]})
		}
		// Queries in a random order, answers in another, connects in a
		// third, all connects after all answers (the worst case for a
		// table that names by address only).
		tq := 0.0
		order := rng.Perm(16)
		for _, i := range order {
			q := dnsPacket(t, tq, uint16(i+1), calls[i].name, netip.Addr{}, false)
			q.Proc = &event.Process{PID: calls[i].pid, Comm: "node"}
			pkts = append(pkts, q)
			tq += 0.001
		}
		for _, i := range rng.Perm(16) {
			pkts = append(pkts, dnsPacket(t, tq, uint16(i+1), calls[i].name, shared, true))
			tq += 0.001
		}
		// A repeat of one process's answer, after the others.
		rq := dnsPacket(t, tq, 99, names[0], netip.Addr{}, false)
		rq.Proc = &event.Process{PID: calls[0].pid, Comm: "node"}
		pkts = append(pkts, rq, dnsPacket(t, tq+0.0005, 99, names[0], shared, true))
		tq += 0.001
		var socks []*event.Sock
		for k, i := range rng.Perm(16) {
			socks = append(socks, &event.Sock{Time: at(tq), Kind: event.SockConnect, Cookie: uint64(i + 1), Proto: event.ProtoTCP,
				Src: netip.AddrPortFrom(app, uint16(50000+k)), Dst: netip.AddrPortFrom(shared, 443),
				Proc: &event.Process{PID: calls[i].pid, Comm: "next-build"}})
			tq += 0.0001
		}
		a := New(Config{LocalAny: true})
		for _, p := range pkts {
			a.Packet(p)
		}
		for _, s := range socks {
			a.Sock(s)
		}
		r := a.Finish()
		if len(r.Connections) != 16 {
			t.Fatalf("seed %d: %d connections, want 16", seed, len(r.Connections))
		}
		right := 0
		for _, c := range r.Connections {
			want := names[(*c.PID-1000)%2]
			if c.Host == want && c.NameSource == report.SourceDNS {
				right++
			} else {
				t.Errorf("seed %d: pid %d named %q (%s), want %q", seed, *c.PID, c.Host, c.NameSource, want)
			}
		}
		if right != 16 {
			t.Fatalf("seed %d: %d of 16 named by their own lookup", seed, right)
		}
	}
}

func TestNameTableSteps(t *testing.T) {
	other := netip.MustParseAddr("198.18.0.3")
	var st report.Stats
	tests := []struct {
		name      string
		add       func(nt *nameTable)
		client    netip.Addr
		proc      *event.Process
		t         float64
		want      string
		wantGuess bool
	}{
		{
			name: "own process wins over a later answer to another",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, pr(1), at(1), 60, &st)
				nt.add(shared, "b.example", app, pr(2), at(2), 60, &st)
			},
			client: app, proc: pr(1), t: 3, want: "a.example",
		},
		{
			name: "a repeat after the connect does not hide the first answer",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, pr(0), at(1), 60, &st)
				nt.add(shared, "b.example", app, pr(0), at(2), 60, &st)
				nt.add(shared, "a.example", app, pr(0), at(5), 60, &st)
			},
			client: app, t: 3, want: "b.example",
		},
		{
			name: "the host's unattributed lookup when the process has none",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, pr(0), at(1), 60, &st)
				nt.add(shared, "b.example", app, pr(2), at(2), 60, &st)
			},
			client: app, proc: pr(1), t: 3, want: "a.example",
		},
		{
			name: "another process's lookup of a shared address is a guess",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, pr(2), at(1), 60, &st)
				nt.add(shared, "b.example", app, pr(3), at(2), 60, &st)
			},
			client: app, proc: pr(1), t: 3, want: "b.example", wantGuess: true,
		},
		{
			name: "a single name for the address is no guess",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", other, pr(0), at(1), 60, &st)
			},
			client: app, proc: pr(1), t: 3, want: "a.example",
		},
		{
			name: "live before expired within a step",
			add: func(nt *nameTable) {
				nt.add(shared, "old.example", app, pr(1), at(1), 1, &st)
				nt.add(shared, "a.example", app, pr(1), at(0.5), 60, &st)
			},
			client: app, proc: pr(1), t: 3, want: "a.example",
		},
		{
			name: "a sibling's lookup names the connect when the tree agrees",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, child(5, 4), at(1), 60, &st)
				nt.add(shared, "b.example", app, child(9, 8), at(2), 60, &st)
			},
			client: app, proc: child(6, 4), t: 3, want: "a.example",
		},
		{
			name: "the parent's lookup names the child's connect",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, child(4, 1), at(1), 60, &st)
				nt.add(shared, "b.example", app, child(9, 8), at(2), 60, &st)
			},
			client: app, proc: child(6, 4), t: 3, want: "a.example",
		},
		{
			name: "siblings that disagree are no answer: a guess",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, child(5, 4), at(1), 60, &st)
				nt.add(shared, "b.example", app, child(7, 4), at(2), 60, &st)
			},
			client: app, proc: child(6, 4), t: 3, want: "b.example", wantGuess: true,
		},
		{
			name: "only answers after the connect: a guess",
			add: func(nt *nameTable) {
				nt.add(shared, "a.example", app, pr(1), at(5), 60, &st)
			},
			client: app, proc: pr(1), t: 3, want: "a.example", wantGuess: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nt := newNameTable(100)
			tc.add(&nt)
			got, guess, ok := nt.lookup(shared, tc.client, tc.proc, at(tc.t))
			if !ok || got != tc.want || guess != tc.wantGuess {
				t.Errorf("lookup = %q guess=%v ok=%v, want %q guess=%v", got, guess, ok, tc.want, tc.wantGuess)
			}
		})
	}
}

func TestNameTableBounded(t *testing.T) {
	var st report.Stats
	nt := newNameTable(8)
	for i := range 100 {
		for j := range 40 {
			nt.add(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), fmt.Sprintf("n%d.example", j), app, pr(j), at(float64(i)), 60, &st)
		}
	}
	if len(nt.m) > 8 || st.NamesEvicted == 0 {
		t.Fatalf("table holds %d addresses, evicted %d", len(nt.m), st.NamesEvicted)
	}
	for _, e := range nt.m {
		if len(e) > namesPerAddr {
			t.Fatalf("%d names for one address", len(e))
		}
	}
}

// TestResolvedNotContactedSharedAddress: the resolver also serves the
// name's address (a home router, a stand-in internet); DNS to it is no
// contact with the name, a TCP connect is.
func TestResolvedNotContactedSharedAddress(t *testing.T) {
	q := dnsPacket(t, 0, 1, "api.wordpress.org", netip.Addr{}, false)
	ans := dnsPacket(t, 0.01, 1, "api.wordpress.org", resolver, true)
	hints := func(pkts ...*event.Packet) []string {
		var out []string
		for _, h := range run(Config{Local: []netip.Prefix{netip.PrefixFrom(app, 32)}}, pkts...).Hints {
			out = append(out, h.Kind+" "+h.Subject)
		}
		return out
	}
	if got := hints(q, ans); len(got) != 1 || got[0] != "resolved-not-contacted api.wordpress.org" {
		t.Errorf("only DNS to the shared address: hints %q, want resolved-not-contacted", got)
	}
	synp := seg(0.02, app, 50000, resolver, 443, syn, 100, 0, "")
	if got := hints(q, ans, synp); len(got) != 0 {
		t.Errorf("a SYN to the address: hints %q, want none", got)
	}
}

// TestNameFromLateAnswer: live sources may deliver a connect before the
// answer that preceded it (the kernel's and the capture's queues differ):
// the call is still named by its own process's lookup once it finishes.
func TestNameFromLateAnswer(t *testing.T) {
	a := New(Config{LocalAny: true})
	other := dnsPacket(t, 0.1, 2, "registry.npmjs.org", netip.Addr{}, false)
	other.Proc = &event.Process{PID: 2, Comm: "registry"}
	a.Packet(other)
	a.Packet(dnsPacket(t, 0.2, 2, "registry.npmjs.org", shared, true))
	// pid 1's connect at 0.5 s arrives before its own lookup's packets.
	src, dst := netip.AddrPortFrom(app, 50000), netip.AddrPortFrom(shared, 443)
	p1 := &event.Process{PID: 1, Comm: "telemetry"}
	a.Sock(&event.Sock{Time: at(0.5), Kind: event.SockConnect, Cookie: 1, Proto: event.ProtoTCP, Src: src, Dst: dst, Proc: p1})
	q := dnsPacket(t, 0.3, 1, "telemetry.nextjs.org", netip.Addr{}, false)
	q.Proc = p1
	a.Packet(q)
	a.Packet(dnsPacket(t, 0.4, 1, "telemetry.nextjs.org", shared, true))
	a.Sock(&event.Sock{Time: at(2.5), Kind: event.SockClose, Cookie: 1, Proto: event.ProtoTCP, Src: src, Dst: dst, Proc: p1})
	r := a.Finish()
	if len(r.Connections) != 1 || r.Connections[0].Host != "telemetry.nextjs.org" || r.Connections[0].NameSource != report.SourceDNS {
		t.Fatalf("connections %+v: want telemetry.nextjs.org from its own lookup", r.Connections)
	}
}

// TestNamesOneProcessInOrder: one process (Node) looks up two names that
// share an address, four times each, then connects in the order its
// answers came back: each connect takes the next answer, so the calls
// split four and four, in order.
func TestNamesOneProcessInOrder(t *testing.T) {
	a := New(Config{LocalAny: true})
	node := &event.Process{PID: 7, Comm: "next-build"}
	names := []string{"telemetry.nextjs.org", "registry.npmjs.org"}
	for i := range 8 {
		q := dnsPacket(t, float64(i)*0.01, uint16(i+1), names[i%2], netip.Addr{}, false)
		q.Proc = node
		a.Packet(q)
	}
	for i := range 8 {
		a.Packet(dnsPacket(t, 0.1+float64(i)*0.01, uint16(i+1), names[i%2], shared, true))
	}
	for i := range 8 {
		a.Sock(&event.Sock{Time: at(0.2 + float64(i)*0.001), Kind: event.SockConnect, Cookie: uint64(i + 1), Proto: event.ProtoTCP,
			Src: netip.AddrPortFrom(app, uint16(50000+i)), Dst: netip.AddrPortFrom(shared, 443), Proc: node})
	}
	r := a.Finish()
	for i, c := range r.Connections {
		if c.Host != names[i%2] || c.NameSource != report.SourceDNS {
			t.Errorf("connect %d named %q (%s), want %q", i, c.Host, c.NameSource, names[i%2])
		}
	}
}

// TestNameTableEntriesBounded: every asker of an address gets its own entry,
// so a capture of many clients asking for names that share few addresses
// must still stay within entriesPerAddr*MaxNames entries, counted as
// evictions.
func TestNameTableEntriesBounded(t *testing.T) {
	const maxNames = 8
	nt := newNameTable(maxNames)
	var st report.Stats
	for i := 0; i < 4000; i++ {
		addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 4)})
		client := netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)})
		nt.add(addr, fmt.Sprintf("n%d.example.test", i%7), client, nil, int64(i), 60, &st)
		total := 0
		for _, e := range nt.m {
			total += len(e)
		}
		if total != nt.entries {
			t.Fatalf("after %d answers the table counts %d entries, holds %d", i+1, nt.entries, total)
		}
		if total > entriesPerAddr*maxNames {
			t.Fatalf("after %d answers the table holds %d entries, bound %d", i+1, total, entriesPerAddr*maxNames)
		}
	}
	if st.NamesEvicted == 0 {
		t.Fatal("nothing was evicted: the bound was never reached")
	}
	// The newest answer is still there.
	if name, _, ok := nt.lookup(netip.AddrFrom4([4]byte{203, 0, 113, 3}), netip.AddrFrom4([4]byte{198, 18, 15, 159}), nil, 4000); !ok || name != "n2.example.test" {
		t.Errorf("the newest answer's name = %q, %v; want n2.example.test (answer 3999)", name, ok)
	}
}
