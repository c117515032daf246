//go:build linux

package sched

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	ebpftracer "github.com/egress-dev/egress/capture/ebpf"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// TestPrivilegedSchedForkExit: a shell forks short-lived children (followed
// by the connect tracer's fork tracepoint) that exit after the tracer has
// forgotten their tgid: every thread that ran is still counted out, so
// the view ends idle with no thread counted running, and the children's
// parent is still known after they exited.
func TestPrivilegedSchedForkExit(t *testing.T) {
	testnet.RequirePrivileged(t, "sh", "sleep")
	cmd := exec.Command("sh", "-c", "read x; sleep 0.2; for i in 1 2 3 4; do sh -c 'sleep 0.05'; done; sleep 0.3")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(200 * time.Millisecond)
	tr, err := ebpftracer.Open(ebpftracer.Options{PIDs: []int{cmd.Process.Pid}, FollowChildren: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sv, err := Open(Options{Tracked: tr.TrackedMap()})
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Close()
	var mu sync.Mutex
	var acts []event.Activity
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- sv.Run(ctx, func(a event.Activity) { mu.Lock(); acts = append(acts, a); mu.Unlock() })
	}()
	in.Write([]byte("x\n"))
	time.Sleep(500 * time.Millisecond) // inside the last sleep 0.3
	var n uint64
	if err := sv.objs.Running.Lookup(uint32(0), &n); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(50 * time.Millisecond)
	// The shell's children are gone, their parent is still known.
	var child, parent uint32
	kids := 0
	for it := sv.objs.Parents.Iterate(); it.Next(&child, &parent); {
		if int(parent) == cmd.Process.Pid && sv.Parent(int(child)) == cmd.Process.Pid {
			kids++
		}
	}
	if kids < 4 {
		t.Errorf("%d children of the shell remembered, want its 4 sh and 1 sleep at least", kids)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if n != 0 {
		t.Errorf("%d threads counted running while the tree slept", n)
	}
	if len(acts) < 4 || acts[len(acts)-1].Running {
		t.Errorf("changes %+v: want several, ending idle", acts)
	}
}
