package analyze

import (
	"net/netip"
	"sort"
	"time"

	"github.com/egress-dev/egress/appproto"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/report"
)

// namesPerAddr bounds the names remembered for one address (CDNs put many
// names on one address; the most recent ones matter).
const namesPerAddr = 4

type nameEntry struct {
	name    string
	client  netip.Addr // who looked it up
	seen    int64
	expires int64
}

// nameTable maps addresses to the DNS names that answered them.
type nameTable struct {
	m   map[netip.Addr]*[namesPerAddr]nameEntry
	max int
}

func newNameTable(max int) nameTable {
	return nameTable{m: make(map[netip.Addr]*[namesPerAddr]nameEntry), max: max}
}

func (nt *nameTable) add(addr netip.Addr, name string, client netip.Addr, t int64, ttl uint32, st *report.Stats) {
	addr = addr.Unmap()
	e := nt.m[addr]
	if e == nil {
		if len(nt.m) >= nt.max {
			nt.evict(st)
		}
		e = new([namesPerAddr]nameEntry)
		nt.m[addr] = e
	}
	exp := t + int64(ttl)*int64(time.Second)
	// Refresh an existing entry for the same name and client, else replace
	// the oldest slot.
	oldest := 0
	for i := range e {
		if e[i].name == name && e[i].client == client {
			e[i].seen, e[i].expires = t, exp
			return
		}
		if e[i].seen < e[oldest].seen {
			oldest = i
		}
	}
	e[oldest] = nameEntry{name: name, client: client, seen: t, expires: exp}
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
			newest = max(newest, e[i].seen)
		}
		all = append(all, aged{a, newest})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].seen != all[j].seen {
			return all[i].seen < all[j].seen
		}
		return all[i].addr.Less(all[j].addr)
	})
	for _, x := range all[:len(all)-nt.max*3/4] {
		delete(nt.m, x.addr)
		st.NamesEvicted++
	}
}

// lookup returns the name for addr as client would have it at time t: the
// name this client looked up last (live TTL first), else any client's most
// recent answer. Expired answers are used when nothing fresher exists: apps
// cache longer than TTLs say.
func (nt *nameTable) lookup(addr, client netip.Addr, t int64) (string, bool) {
	e := nt.m[addr.Unmap()]
	if e == nil {
		return "", false
	}
	best, bestScore := -1, -1
	for i := range e {
		en := &e[i]
		if en.name == "" || en.seen > t {
			continue
		}
		score := 0
		if en.client == client {
			score += 2
		}
		if en.expires >= t {
			score++
		}
		if score > bestScore || (score == bestScore && en.seen > e[best].seen) {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return "", false
	}
	return e[best].name, true
}

// nameAttempt names a new attempt from DNS answers seen before it, and
// joins a dual-stack host's addresses: a connection from an address of one
// family to an address just answered to a client of the other family alone
// is that client's host (local.go).
func (a *Analyzer) nameAttempt(at *attempt, t int64) {
	if name, ok := a.names.lookup(at.server.Addr(), at.client.Addr(), t); ok {
		at.host, at.nameSource = name, report.SourceDNS
	}
	if partner, ok := a.names.soleAsker(at.server.Addr(), t); ok && partner.Is4() != at.client.Addr().Unmap().Is4() {
		a.join(at.client.Addr(), partner)
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
		if en.name == "" || en.seen > t || t-en.seen > joinWindow {
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

// setAppName records a name from SNI or HTTP Host; a DNS name seen before
// the connection wins, since it is what the client asked for.
func (a *Analyzer) setAppName(at *attempt, name, source string) {
	if at.nameSource == report.SourceDNS || name == "" {
		return
	}
	at.host, at.nameSource = name, source
}
