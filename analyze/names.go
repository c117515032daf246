package analyze

import (
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/egress-dev/egress/appproto"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// namesPerAddr bounds the answers remembered for one address. CDNs (and a
// stand-in internet) put many names on one address, and every process that
// asks gets its own entry, so that each connect is named by its own lookup.
const namesPerAddr = 32

// nameEntry is one name learnt for an address, by one asker (client address
// and, where known, process).
type nameEntry struct {
	name    string
	client  netip.Addr // who looked it up
	pid     int        // the process that asked; 0 when unknown
	parent  int        // its parent; 0 when unknown
	first   int64      // first answer: the entry names connects from then on
	last    int64      // latest answer; a repeat never moves first
	expires int64
	// unused holds the times of answers no connect of the asking process
	// has taken yet, oldest first (at most maxUnused); nil until the
	// first answer to a known process. A pointer, not a slice, keeps the
	// entry small: most answers (any capture without process comments)
	// have no known asker, and the table holds up to namesPerAddr entries
	// for each of MaxNames addresses, live through the whole replay.
	unused *[]int64
}

// maxUnused bounds the answers of one name an asker may have waiting.
const maxUnused = 16

func (e *nameEntry) answered(t int64) {
	if e.unused == nil {
		e.unused = new([]int64)
	}
	u := e.unused
	if len(*u) == maxUnused {
		*u = append((*u)[:0], (*u)[1:]...)
	}
	*u = append(*u, t)
}

// nextUnused is the time of the oldest answer not yet taken by a connect.
func (e *nameEntry) nextUnused() (int64, bool) {
	if e.unused == nil || len(*e.unused) == 0 {
		return 0, false
	}
	return (*e.unused)[0], true
}

// recency is when, as of time t, the asker last had this answer: a repeat
// answered after t does not count for a connect at t.
func (e *nameEntry) recency(t int64) int64 {
	if e.last <= t {
		return e.last
	}
	return e.first
}

// nameTable maps addresses to the DNS names that answered them.
type nameTable struct {
	m   map[netip.Addr][]nameEntry
	max int
	// entries counts the entries of every address, bounded by
	// entriesPerAddr*max: namesPerAddr entries at each of max addresses
	// would be 180 MB, and a hostile capture can ask for that.
	entries int
}

// entriesPerAddr is the mean entries per address the table makes room for.
const entriesPerAddr = 4

func newNameTable(max int) nameTable {
	return nameTable{m: make(map[netip.Addr][]nameEntry), max: max}
}

func (nt *nameTable) add(addr netip.Addr, name string, client netip.Addr, asker *event.Process, t int64, ttl uint32, st *report.Stats) {
	pid, parent := procIDs(asker)
	addr = addr.Unmap()
	e, ok := nt.m[addr]
	if !ok && len(nt.m) >= nt.max || nt.entries >= entriesPerAddr*nt.max {
		nt.evict(st)
		e = nt.m[addr]
	}
	exp := t + int64(ttl)*int64(time.Second)
	// A repeat of the same asker's answer extends it; it keeps its first
	// time, so a connect made between the two answers still finds it.
	// One pass finds the repeat and, for a full address, the oldest entry.
	oldest := 0
	for i := range e {
		x := &e[i]
		if x.last < e[oldest].last {
			oldest = i
		}
		// The asker first: entries of one address differ mostly by it.
		if x.client == client && x.pid == pid && x.name == name {
			x.last, x.expires = max(x.last, t), max(x.expires, exp)
			if x.pid != 0 {
				x.answered(t)
			}
			x.first = min(x.first, t)
			return
		}
	}
	ne := nameEntry{name: name, client: client, pid: pid, parent: parent, first: t, last: t, expires: exp}
	if pid != 0 {
		ne.answered(t)
	}
	if len(e) < namesPerAddr {
		nt.m[addr] = append(e, ne)
		nt.entries++
		return
	}
	e[oldest] = ne
}

// evict frees about a quarter of the table: the addresses whose newest
// answer is oldest (an order that does not depend on the map's).
func (nt *nameTable) evict(st *report.Stats) {
	type aged struct {
		addr netip.Addr
		seen int64
	}
	all := make([]aged, 0, len(nt.m))
	for a, e := range nt.m {
		var newest int64
		for i := range e {
			newest = max(newest, e[i].last)
		}
		all = append(all, aged{a, newest})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].seen != all[j].seen {
			return all[i].seen < all[j].seen
		}
		return all[i].addr.Less(all[j].addr)
	})
	// A quarter of the addresses, or more until a quarter of the entries
	// are free.
	n := len(all) - nt.max*3/4
	for i, x := range all {
		if i >= n && nt.entries < entriesPerAddr*nt.max*3/4 {
			break
		}
		nt.entries -= len(nt.m[x.addr])
		delete(nt.m, x.addr)
		st.NamesEvicted++
	}
}

// agree says whether every entry that matches has name.
func agree(e []nameEntry, match func(*nameEntry) bool, name string) bool {
	for i := range e {
		if match(&e[i]) && e[i].name != name && !strings.EqualFold(e[i].name, name) {
			return false
		}
	}
	return true
}

// procIDs is a process's pid and parent (0 when unknown).
func procIDs(p *event.Process) (pid, parent int) {
	if p == nil {
		return 0, 0
	}
	return p.PID, p.Parent
}

// sameTree says whether a lookup by (pid, parent) belongs to the process
// tree of a connect by (cpid, cparent): its parent, a child or a sibling.
func sameTree(pid, parent, cpid, cparent int) bool {
	if pid == 0 || cpid == 0 {
		return false
	}
	return pid == cparent || parent == cpid || (parent != 0 && parent == cparent)
}

// lookup returns the name for a connect from client (process pid, 0 when
// unknown) to addr at time t, and says whether it is only a guess. In
// order: the name this process looked up last before t whose answer holds
// addr; else the name its process tree (parent, children, siblings) looked
// up last; else the name this host looked up last (lookups of no known
// process, or any when the connect's process is unknown); else any name
// for addr, a guess when the address has several. Within each step a live
// TTL wins over an expired one (apps cache longer than TTLs say), then
// the most recent answer.
func (nt *nameTable) lookup(addr, client netip.Addr, proc *event.Process, t int64) (name string, guess, ok bool) {
	name, step := nt.lookupStep(addr, client, proc, t, false)
	return name, step == stepGuess, step != stepNone
}

// Naming steps, best first.
const (
	stepProcess = 1 + iota // the connecting process's own lookup
	stepTree               // its parent's, a child's or a sibling's
	stepHost               // the host's lookup of no known process
	stepAny                // any name, the address's only one
	stepGuess              // any name, of several
	stepNone    = 0
)

// lookupStep is lookup, saying which step named the connect. With consume
// the connect uses up one answer of its own process: one process that
// looked up several names sharing the address (Node's concurrent calls)
// connects in the order its answers came back, so each connect takes the
// earliest answer no earlier connect took, and only when all are taken the
// most recent.
func (nt *nameTable) lookupStep(addr, client netip.Addr, proc *event.Process, t int64, consume bool) (string, int) {
	pid, parent := procIDs(proc)
	e := nt.m[addr.Unmap()]
	if len(e) == 0 {
		return "", stepNone
	}
	pick := func(match func(*nameEntry) bool, future bool) int {
		best := -1
		var bestLive bool
		var bestAt int64
		for i := range e {
			x := &e[i]
			if !match(x) || (!future && x.first > t) {
				continue
			}
			live, at := x.expires >= t, x.recency(t)
			if x.first > t {
				live, at = false, -x.first // answered after the connect: the nearest first
			}
			if best < 0 || (live && !bestLive) || (live == bestLive && at > bestAt) {
				best, bestLive, bestAt = i, live, at
			}
		}
		return best
	}
	if pid != 0 {
		if consume {
			best := -1
			var bestAt int64
			for i := range e {
				x := &e[i]
				at, ok := x.nextUnused()
				if x.pid != pid || !ok || at > t {
					continue
				}
				if best < 0 || at < bestAt {
					best, bestAt = i, at
				}
			}
			if best >= 0 {
				x := &e[best]
				*x.unused = (*x.unused)[1:]
				return x.name, stepProcess
			}
		}
		if i := pick(func(x *nameEntry) bool { return x.pid == pid }, false); i >= 0 {
			return e[i].name, stepProcess
		}
		// A tree is many processes (a build's workers are siblings):
		// its answer names the connect only when the tree agrees.
		tree := func(x *nameEntry) bool { return x.first <= t && sameTree(x.pid, x.parent, pid, parent) }
		if i := pick(tree, false); i >= 0 && agree(e, tree, e[i].name) {
			return e[i].name, stepTree
		}
	}
	if i := pick(func(x *nameEntry) bool { return x.client == client && (x.pid == 0 || pid == 0) }, false); i >= 0 {
		return e[i].name, stepHost
	}
	i := pick(func(*nameEntry) bool { return true }, false)
	if i < 0 {
		// Only answers after the connect (events out of order): still
		// the address's name, but not one the caller can have used.
		i = pick(func(*nameEntry) bool { return true }, true)
	}
	guess := e[i].first > t
	for j := range e {
		guess = guess || e[j].name != e[i].name && !strings.EqualFold(e[j].name, e[i].name)
	}
	if guess {
		return e[i].name, stepGuess
	}
	return e[i].name, stepAny
}

// nameAttempt names a new attempt from DNS answers seen before it, and
// joins a dual-stack host's addresses: a connection from an address of one
// family to an address just answered to a client of the other family alone
// is that client's host (local.go).
func (a *Analyzer) nameAttempt(at *attempt, t int64) {
	if partner, ok := a.names.soleAsker(at.server.Addr(), t); ok && partner.Is4() != at.client.Addr().Unmap().Is4() {
		a.join(at.client.Addr(), partner)
	}
	name, step := a.names.lookupStep(at.server.Addr(), at.client.Addr(), at.proc, t, true)
	if step == stepNone {
		return
	}
	at.host, at.nameStep, at.nameSource = name, step, report.SourceDNS
	if step == stepGuess {
		at.nameSource = report.SourceGuess
	}
}

// renameAttempt looks again, when the attempt is finished, for a better
// DNS name than it got at its start: an answer given before the connect
// may reach the analyzer after it (live sources deliver the kernel's and
// the capture's events by different queues). Only answers from before
// the connect count, as at the start.
func (a *Analyzer) renameAttempt(at *attempt) {
	if at.nameStep == stepProcess || at.nameSource == report.SourceSNI || at.nameSource == report.SourceHTTP {
		return
	}
	name, step := a.names.lookupStep(at.server.Addr(), at.client.Addr(), at.proc, at.start, false)
	if step == stepNone || (at.nameStep != stepNone && step >= at.nameStep) {
		return
	}
	at.host, at.nameStep, at.nameSource = name, step, report.SourceDNS
	if step == stepGuess {
		at.nameSource = report.SourceGuess
	}
}

// joinWindow is how recent an answer must be for the connection to its
// address to join the asker's addresses.
const joinWindow = int64(2 * time.Second)

// soleAsker returns the client that the answers for addr seen in the
// joinWindow before t went to, when they all went to one client.
func (nt *nameTable) soleAsker(addr netip.Addr, t int64) (netip.Addr, bool) {
	e := nt.m[addr.Unmap()]
	if e == nil {
		return netip.Addr{}, false
	}
	var who netip.Addr
	for i := range e {
		en := &e[i]
		if en.name == "" || en.first > t || t-en.recency(t) > joinWindow {
			continue
		}
		if who.IsValid() && en.client != who {
			return netip.Addr{}, false
		}
		who = en.client
	}
	return who.Unmap(), who.IsValid()
}

// maxHello bounds the bytes buffered to complete a TLS ClientHello.
const maxHello = 16 << 10

// clientPayload looks at the start of a client's byte stream for a TLS
// ClientHello (SNI) or an HTTP request (Host), and feeds DNS over TCP.
func (a *Analyzer) clientPayload(f *flow, p *event.Packet) {
	if f.dns != nil {
		a.dnsTCPSegment(f, p, true)
		return
	}
	if f.named {
		return
	}
	at := f.att
	data := p.Payload
	if f.hello != nil {
		if p.Seq != f.helloNext {
			f.named, f.hello = true, nil // out of order: give up rather than guess
			return
		}
		f.hello = append(f.hello, data...)
		f.helloNext += uint32(len(data))
		data = f.hello
	}
	name, status, need := appproto.ClientHelloSNI(data)
	switch status {
	case appproto.Found:
		a.setAppName(at, name, report.SourceSNI)
		f.named, f.hello = true, nil
		return
	case appproto.NeedMore:
		if need <= maxHello && f.hello == nil {
			f.hello = append(make([]byte, 0, need), data...)
			f.helloNext = p.Seq + uint32(len(data))
			return
		}
		if need <= maxHello {
			return
		}
		f.named, f.hello = true, nil
		return
	}
	f.named, f.hello = true, nil
	if host, ok := appproto.HTTPHost(data); ok {
		a.setAppName(at, host, report.SourceHTTP)
	}
}

// setAppName records a name from SNI or HTTP Host: what the connection
// itself says wins over any DNS answer (several names may share the
// address). When it agrees with the DNS name, the source stays dns.
func (a *Analyzer) setAppName(at *attempt, name, source string) {
	if name == "" || (at.nameSource == report.SourceDNS && strings.EqualFold(strings.TrimSuffix(name, "."), strings.TrimSuffix(at.host, "."))) {
		return
	}
	at.host, at.nameSource = name, source
}
