package afpacket

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egress-dev/egress/event"
)

// procNetUDP is a real /proc/net/udp of the story's app namespace during a
// lookup (a Go resolver's socket on port 40000, a server on 53).
const procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
  127: 020012C6:9C40 010012C6:0035 01 00000000:00000000 00:00000000 00000000     0        0 91234 2 0000000000000000 0          
  512: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 88001 2 0000000000000000 0          
`

func TestSocketInodes(t *testing.T) {
	for _, tc := range []struct {
		port uint16
		want []uint64
	}{
		{40000, []uint64{91234}},
		{53, []uint64{88001}},
		{443, nil},
	} {
		if diff := cmp.Diff(tc.want, socketInodes(strings.NewReader(procNetUDP), tc.port)); diff != "" {
			t.Errorf("port %d (-want +got):\n%s", tc.port, diff)
		}
	}
}

func FuzzSocketInodes(f *testing.F) {
	f.Add(procNetUDP, uint16(40000))
	if b, err := os.ReadFile("/proc/net/udp"); err == nil {
		f.Add(string(b), uint16(53))
	}
	if b, err := os.ReadFile("/proc/net/tcp6"); err == nil {
		f.Add(string(b), uint16(22))
	}
	f.Fuzz(func(t *testing.T, table string, port uint16) {
		for _, ino := range socketInodes(strings.NewReader(table), port) {
			if ino == 0 {
				t.Fatal("inode 0 returned")
			}
		}
	})
}

// TestSocketOwnersSelf finds this test process as the owner of a UDP
// socket it holds, the way a resolver holds its query socket.
func TestSocketOwnersSelf(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	o := NewSocketOwners(os.Getpid())
	q := &event.Packet{Proto: event.ProtoUDP, Src: netip.MustParseAddr("127.0.0.1"), SrcPort: port, Dst: netip.MustParseAddr("127.0.0.53"), DstPort: 53}
	p := o.Process(q)
	comm, _ := os.ReadFile("/proc/self/comm")
	want := &event.Process{PID: os.Getpid(), Comm: strings.TrimSpace(string(comm)), Parent: os.Getppid()}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("query's process (-want +got):\n%s", diff)
	}
	// The answer, reversed, maps to the same process (from the cache, even
	// once the socket is closed).
	c.Close()
	a := &event.Packet{Proto: event.ProtoUDP, Src: q.Dst, SrcPort: 53, Dst: q.Src, DstPort: port}
	if diff := cmp.Diff(want, o.Process(a)); diff != "" {
		t.Errorf("answer's process (-want +got):\n%s", diff)
	}
	// Not DNS, or TCP on a port nobody holds: nil.
	if p := o.Process(&event.Packet{Proto: event.ProtoUDP, SrcPort: port, DstPort: 443}); p != nil {
		t.Errorf("non-DNS packet attributed to %+v", p)
	}
	if p := o.Process(&event.Packet{Proto: event.ProtoTCP, SrcPort: port, DstPort: 53}); p != nil {
		t.Errorf("TCP packet on an unused port attributed to %+v", p)
	}
}
