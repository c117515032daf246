//go:build linux

package sched

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/testkit/testnet"
)

func TestDecodeRecord(t *testing.T) {
	raw := []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0}
	a, err := decode(raw, 10)
	if err != nil || a.Time != 11 || !a.Running {
		t.Fatalf("decode = %+v, %v", a, err)
	}
	if _, err := decode(raw[:8], 0); err == nil {
		t.Fatal("a short record decoded")
	}
}

// TestPrivilegedSchedView follows a process that sleeps 400 ms, spins on
// the CPU for 400 ms and sleeps again: the view says it ran about 400 ms
// of the time and slept the rest.
func TestPrivilegedSchedView(t *testing.T) {
	testnet.RequirePrivileged(t, "python3")
	tracked, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 32768})
	if err != nil {
		t.Fatal(err)
	}
	defer tracked.Close()
	cmd := exec.Command("python3", "-c", `
import time, sys
sys.stdin.read(1)
time.sleep(0.4)
t = time.monotonic()
while time.monotonic() - t < 0.4:
    pass
time.sleep(0.4)
`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(300 * time.Millisecond) // python starts, then waits on stdin
	if err := tracked.Put(uint32(cmd.Process.Pid), uint8(1)); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(Options{Tracked: tracked})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var mu sync.Mutex
	var acts []event.Activity
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(ctx, func(a event.Activity) { mu.Lock(); acts = append(acts, a); mu.Unlock() })
	}()
	start := time.Now().UnixNano()
	in.Write([]byte("x"))
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	end := time.Now().UnixNano()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(acts) < 3 || acts[0].Running {
		t.Fatalf("activity %+v: want the sleeping state at attach, then changes", acts)
	}
	var ran int64
	for i, a := range acts {
		if !a.Running {
			continue
		}
		to := end
		if i+1 < len(acts) {
			to = min(acts[i+1].Time, end)
		}
		if from := max(a.Time, start); to > from {
			ran += to - from
		}
	}
	t.Logf("ran %v, %d changes", time.Duration(ran), len(acts))
	if ran < int64(350*time.Millisecond) || ran > int64(550*time.Millisecond) {
		t.Errorf("ran %v of %v, want about 400ms; changes %d", time.Duration(ran), time.Duration(end-start), len(acts))
	}
	if l := tr.Lost(); l != 0 {
		t.Errorf("lost %d changes", l)
	}
}
