//go:build linux

package afpacket

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// sendIn sends one UDP datagram to each of ports on 127.0.0.1 from inside
// the namespace, on a thread that is discarded afterwards.
func sendIn(t *testing.T, nsPath string, ports ...int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer func() {
			// Back home, or the thread stays locked and is discarded.
			if unix.Setns(self, unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			unix.Close(self)
		}()
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- err
			return
		}
		for _, p := range ports {
			s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
			if err != nil {
				errc <- err
				return
			}
			err = unix.Sendto(s, []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07updates\x06vendor\x04test\x00\x00\x01\x00\x01"), 0,
				&unix.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}})
			unix.Close(s)
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("sending in %s: %v", nsPath, err)
	}
}

func TestPrivilegedCaptureInNamespace(t *testing.T) {
	n := testnet.NewForTest(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ns, err := n.Namespace(ctx, "cap")
	if err != nil {
		t.Fatal(err)
	}
	nsPath := "/run/netns/" + ns.Name
	c, err := Open(Options{NetNS: nsPath})
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan *Frame, 16)
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { done <- c.Run(runCtx, func(f *Frame) { frames <- f }) }()
	t.Cleanup(func() { stop(); <-done })

	before := time.Now()
	// Port 80 must be filtered out, port 53 kept; the one on our own
	// namespace's loopback must not be seen at all.
	sendIn(t, nsPath, 80, 53)
	own, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53})
	if err == nil {
		own.Write([]byte("not in the namespace"))
		own.Close()
	}
	var got []*Frame
	timeout := time.After(2 * time.Second)
collect:
	for {
		select {
		case f := <-frames:
			got = append(got, f)
		case <-timeout:
			break collect
		}
	}
	// Nothing listens in the namespace: each datagram draws an ICMP port
	// unreachable, which is kept too (an unanswered lookup's cause).
	if len(got) != 3 {
		for _, f := range got {
			t.Logf("frame %x", f.Data)
		}
		t.Fatalf("got %d frames, want the port-80 datagram's ICMP error, the query to port 53 and its ICMP error, each once", len(got))
	}
	for _, i := range []int{0, 2} {
		if p := got[i].Packet; got[i].Err != nil || p.Proto != event.ProtoICMP || p.ICMPType != 3 || p.ICMPCode != 3 || !p.Quoted.Valid {
			t.Errorf("frame %d: err %v, packet %+v, want ICMP port unreachable", i, got[i].Err, p)
		}
	}
	f := got[1]
	p := f.Packet
	if f.Err != nil || p.Proto != event.ProtoUDP || p.DstPort != 53 || p.Dst.String() != "127.0.0.1" || p.Dir != event.DirOut {
		t.Errorf("frame: err %v, packet %+v", f.Err, p)
	}
	if d := time.Unix(0, f.Time).Sub(before); d < 0 || d > 2*time.Second {
		t.Errorf("timestamp %v is %v after the send started", time.Unix(0, f.Time), d)
	}
	if f.WireLen != len(f.Data) || f.WireLen != sllLen+20+8+37 {
		t.Errorf("wire length %d, data %d, want %d", f.WireLen, len(f.Data), sllLen+20+8+37)
	}
	stop()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run after cancel = %v, want context.Canceled", err)
	}
	done <- nil // for the cleanup
	st := c.Stats()
	if st.Packets != 3 || st.Lost != 0 || st.Undecodable != 0 {
		t.Errorf("stats %+v, want 3 packets, none lost", st)
	}
}
