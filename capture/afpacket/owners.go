package afpacket

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/procfs"
)

// SocketOwners finds the process behind a DNS packet: the local port of
// the query's socket leads to the socket's inode in /proc/<root>/net/udp
// (tcp, udp6, tcp6: the root's network namespace), and the inode to the
// process among root and its descendants that holds it open.
//
// It is best effort: a resolver that closed its socket before the packet
// was read cannot be found (the reader runs within microseconds, a lookup
// takes at least a round trip), and sockets of processes outside the tree
// (a local stub resolver's upstream queries) are not attributed on purpose.
type SocketOwners struct {
	root int
	proc string // /proc, a field so tests can point it at a fixture tree

	mu    sync.Mutex // guards cache
	cache map[ownerKey]ownerEntry
}

type ownerKey struct {
	tcp  bool
	port uint16
}

type ownerEntry struct {
	proc *event.Process
	at   time.Time
}

// ownerTTL bounds how long a port stays attributed: ephemeral ports are
// reused, but not within seconds.
const ownerTTL = 10 * time.Second

// NewSocketOwners attributes packets to root and its descendants.
func NewSocketOwners(root int) *SocketOwners {
	return &SocketOwners{root: root, proc: "/proc", cache: map[ownerKey]ownerEntry{}}
}

// Process returns the process of the local end of a DNS packet (port 53
// on the other side), or nil.
func (o *SocketOwners) Process(p *event.Packet) *event.Process {
	if p.Proto != event.ProtoUDP && p.Proto != event.ProtoTCP {
		return nil
	}
	var port uint16
	switch {
	case p.DstPort == 53 && p.SrcPort != 53:
		port = p.SrcPort
	case p.SrcPort == 53 && p.DstPort != 53:
		port = p.DstPort
	default:
		return nil
	}
	k := ownerKey{tcp: p.Proto == event.ProtoTCP, port: port}
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.cache[k]; ok && now.Sub(e.at) < ownerTTL {
		return e.proc
	}
	pr := o.lookup(k)
	if pr == nil {
		return nil // not cached: the socket may show up by the next packet
	}
	if len(o.cache) > 4096 {
		clear(o.cache)
	}
	o.cache[k] = ownerEntry{proc: pr, at: now}
	return pr
}

func (o *SocketOwners) lookup(k ownerKey) *event.Process {
	tables := []string{"udp", "udp6"}
	if k.tcp {
		tables = []string{"tcp", "tcp6"}
	}
	inodes := map[uint64]bool{}
	for _, t := range tables {
		f, err := os.Open(filepath.Join(o.proc, strconv.Itoa(o.root), "net", t))
		if err != nil {
			continue
		}
		for _, ino := range socketInodes(f, k.port) {
			inodes[ino] = true
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return nil
	}
	for _, pid := range o.tree() {
		dir := filepath.Join(o.proc, strconv.Itoa(pid), "fd")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			l, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			s, ok := strings.CutPrefix(l, "socket:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
			if err == nil && inodes[ino] {
				comm, _ := os.ReadFile(filepath.Join(o.proc, strconv.Itoa(pid), "comm"))
				parent := 0
				if stat, err := os.ReadFile(filepath.Join(o.proc, strconv.Itoa(pid), "stat")); err == nil {
					parent, _ = procfs.ParsePPID(stat)
				}
				return &event.Process{PID: pid, Comm: comment.SafeComm(strings.TrimSuffix(string(comm), "\n")), Parent: parent}
			}
		}
	}
	return nil
}

// tree returns root and its living descendants (from each process's ppid).
func (o *SocketOwners) tree() []int {
	tree, err := procfs.Tree(o.proc, o.root)
	if err != nil {
		return []int{o.root}
	}
	return tree
}

// socketInodes reads a /proc/net/{udp,tcp}[6] table and returns the inodes
// of the sockets whose local port is port. Malformed lines are skipped.
func socketInodes(r io.Reader, port uint16) []uint64 {
	var out []uint64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		if first { // the header line
			first = false
			continue
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || uint16(p) != port {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		out = append(out, ino)
	}
	return out
}
