//go:build linux

package nscapture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/afpacket"
	"github.com/egress-dev/egress/event"
)

// Options configures a Source.
type Options struct {
	Proc  string        // the proc file system (default "/proc")
	Every time.Duration // how often /proc is rescanned (default 5 s)
	Max   int           // namespaces captured at once (default 64)
	// Match, when set, says whose namespaces to capture (the agent's
	// --container and --comm filters); egress's own is always captured.
	Match func(pid int) bool
	// Pinned are directories of namespaces pinned by name, captured even
	// when no process is in them between scans (default /run/netns, where
	// ip-netns(8) and CNI plugins pin them). Not used with Match.
	Pinned []string
}

// Source is a capture.Source over every namespace found.
type Source struct {
	opts Options

	mu      sync.Mutex
	caps    map[uint64]*nsCapture // by namespace inode
	closed  event.Stats           // stats of captures already closed
	skipped uint64                // namespaces past Max (counted at each sighting)
	failed  uint64                // namespaces whose capture could not be opened
	lastErr error
	// dups is used under the sink's lock (dropped is atomic).
	dups dedup
}

type nsCapture struct {
	c    *afpacket.Capture
	path string
	seen bool // found by the current scan
	self bool
}

// New makes a Source; nothing is opened until Run.
func New(opts Options) *Source {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	if opts.Max <= 0 {
		opts.Max = 64
	}
	if opts.Pinned == nil && opts.Match == nil {
		opts.Pinned = []string{"/run/netns"}
	}
	return &Source{opts: opts, caps: make(map[uint64]*nsCapture)}
}

// Run captures until ctx ends. It fails only when egress's own namespace
// cannot be captured; other namespaces that cannot be opened are counted
// (Failed) and retried at the next scan.
func (s *Source) Run(ctx context.Context, sink capture.Sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		sinkMu sync.Mutex // one capture delivers at a time, as a Sink expects
	)
	start := func(ino uint64, nc *nsCapture) {
		s.caps[ino] = nc
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = nc.c.Source().Run(ctx, capture.SinkFunc(func(o event.Observation) {
				sinkMu.Lock()
				defer sinkMu.Unlock()
				if p, ok := o.(*event.Packet); ok && s.dups.seen(p, ino) {
					return
				}
				sink.Observe(o)
			}))
		}()
	}
	selfIno, err := nsInode(filepath.Join(s.opts.Proc, "self/ns/net"))
	if err != nil {
		return fmt.Errorf("read own network namespace: %w", err)
	}
	c, err := afpacket.Open(afpacket.Options{})
	if err != nil {
		return err
	}
	s.mu.Lock()
	start(selfIno, &nsCapture{c: c, path: "self", self: true})
	s.mu.Unlock()

	tick := time.NewTicker(s.opts.Every)
	defer tick.Stop()
	for {
		s.scan(start)
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for ino, nc := range s.caps {
				s.closeLocked(ino, nc)
			}
			s.mu.Unlock()
			wg.Wait()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// scan finds the namespaces of /proc's processes, opens the new ones and
// closes those no process holds any more.
func (s *Source) scan(start func(uint64, *nsCapture)) {
	ents, err := os.ReadDir(s.opts.Proc)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, nc := range s.caps {
		nc.seen = nc.self
	}
	var paths []string
	for _, dir := range s.opts.Pinned {
		pinned, _ := os.ReadDir(dir)
		for _, e := range pinned {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			paths = append(paths, filepath.Join(s.opts.Proc, e.Name(), "ns/net"))
		}
	}
	for _, path := range paths {
		ino, err := nsInode(path)
		if err != nil {
			continue // gone, or a kernel thread
		}
		if nc, ok := s.caps[ino]; ok {
			nc.seen = true
			continue
		}
		if s.opts.Match != nil {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
			if err != nil || !s.opts.Match(pid) {
				continue
			}
		}
		if len(s.caps) >= s.opts.Max {
			s.skipped++
			continue
		}
		c, err := afpacket.Open(afpacket.Options{NetNS: path})
		if err != nil {
			s.failed++
			s.lastErr = err
			continue
		}
		start(ino, &nsCapture{c: c, path: path, seen: true})
	}
	for ino, nc := range s.caps {
		if !nc.seen {
			s.closeLocked(ino, nc)
		}
	}
}

func (s *Source) closeLocked(ino uint64, nc *nsCapture) {
	nc.c.Close()
	st := nc.c.Stats()
	s.closed.Packets += st.Packets
	s.closed.Bytes += st.Bytes
	s.closed.Undecodable += st.Undecodable
	s.closed.Truncated += st.Truncated
	s.closed.Lost += st.Lost
	delete(s.caps, ino)
}

// nsInode reads a namespace link's inode ("net:[4026531992]").
func nsInode(path string) (uint64, error) {
	var st syscallStat
	if err := stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Stats sums every capture's, open and closed.
func (s *Source) Stats() event.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.closed
	for _, nc := range s.caps {
		st := nc.c.Stats()
		t.Packets += st.Packets
		t.Bytes += st.Bytes
		t.Undecodable += st.Undecodable
		t.Truncated += st.Truncated
		t.Lost += st.Lost
	}
	return t
}

// Duplicates says how many packets were left out as copies of one already
// delivered from another namespace.
func (s *Source) Duplicates() uint64 { return atomic.LoadUint64(&s.dups.dropped) }

// Namespaces says how many namespaces are captured now, how many
// sightings were past Max, and how many captures failed to open (with the
// last error).
func (s *Source) Namespaces() (open int, skipped, failed uint64, lastErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.caps), s.skipped, s.failed, s.lastErr
}
