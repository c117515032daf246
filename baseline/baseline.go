package baseline

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// churningSuffixes are suffixes whose names below them churn from run to
// run (per request, per region, per edge), so a baseline matches them as
// "*.suffix". They are providers' own media and edge names, never a suffix
// under which unrelated customers pick names.
var churningSuffixes = []string{
	"googlevideo.com",               // rr3---sn-4g5e6nsz.googlevideo.com
	"akamaiedge.net",                // e1234.dscb.akamaiedge.net
	"1e100.net",                     // fra16s50-in-f14.1e100.net
	"actions.githubusercontent.com", // pipelinesghubeus22.actions.githubusercontent.com
}

// Name is the family a host name belongs to across runs: lowercase without
// the trailing dot; "*.suffix" below a churning suffix; and, in a name of
// three or more labels, every run of digits in the first label is "*"
// (productionresultssa12.blob.core.windows.net is
// productionresultssa*.blob.core.windows.net), since numbered shards
// churn. sharded says the first label had digits folded.
func Name(host string) (name string, sharded bool) {
	n := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, s := range churningSuffixes {
		if strings.HasSuffix(n, "."+s) {
			return "*." + s, false
		}
	}
	first, rest, ok := strings.Cut(n, ".")
	if !ok || !strings.Contains(rest, ".") {
		return n, false
	}
	var b strings.Builder
	inRun := false
	for i := 0; i < len(first); i++ {
		c := first[i]
		if c >= '0' && c <= '9' {
			if !inRun {
				b.WriteByte('*')
				sharded = true
			}
			inRun = true
			continue
		}
		inRun = false
		b.WriteByte(c)
	}
	if !sharded {
		return n, false
	}
	return b.String() + "." + rest, true
}

// Key is one destination as runs are compared.
type Key struct {
	Name    string // the name's family (Name), else the address
	Port    uint16 // 0 for a lookup
	Proto   string // tcp, udp, or dns for a failed lookup
	Process string // the command name; "" when unknown
}

func (k Key) String() string {
	s := k.Name
	if k.Proto != "dns" {
		// Only an IPv6 address has a colon: names and IPv4 addresses
		// have none, so Name need not be parsed again.
		if strings.Contains(k.Name, ":") {
			s = "[" + s + "]"
		}
		s += fmt.Sprintf(":%d", k.Port)
	}
	return report.Safe(s + "/" + k.Proto)
}

// Entry is what a report says about one Key.
type Entry struct {
	Key
	Calls    int
	Outcomes []string // the distinct outcomes, sorted
	sharded  bool
	ip       netip.Addr // the address, when Name is one
}

// Set is the destinations of one report.
type Set struct {
	Source  string
	entries map[Key]*Entry
	byDest  map[Key][]*Entry // by Key without Process
}

// FromReport collects r's destinations (report.Destinations: outbound
// connections and failed lookups; loopback left out), one entry per
// destination and process.
func FromReport(source string, r *report.Report) *Set {
	s := &Set{Source: source, entries: map[Key]*Entry{}, byDest: map[Key][]*Entry{}}
	for _, d := range report.Destinations(r) {
		name, sharded := d.Name, false
		isAddr := d.Addr.IsValid()
		if !isAddr {
			name, sharded = Name(d.Name)
		}
		procs := d.Comms
		if len(procs) == 0 {
			procs = []string{""}
		}
		for _, p := range procs {
			k := Key{Name: name, Port: d.Port, Proto: d.Proto, Process: p}
			e := s.entries[k]
			if e == nil {
				e = &Entry{Key: k, sharded: sharded, ip: d.Addr}
				s.entries[k] = e
				dk := k
				dk.Process = ""
				s.byDest[dk] = append(s.byDest[dk], e)
			}
			e.Calls += d.Calls
			for o := range d.Outcomes {
				if !slices.Contains(e.Outcomes, o.String()) {
					e.Outcomes = append(e.Outcomes, o.String())
				}
			}
			slices.Sort(e.Outcomes)
		}
	}
	return s
}

// maxReport bounds a report read as a baseline.
const maxReport = 1 << 30

// Load reads a JSON report (egress --format json) as a Set.
func Load(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading baseline: %w", err)
	}
	defer f.Close()
	r, err := ReadReport(path, f)
	if err != nil {
		return nil, err
	}
	return FromReport(path, r), nil
}

// ReadReport decodes a JSON report; anything else is a clear error.
func ReadReport(name string, rd io.Reader) (*report.Report, error) {
	br := bufio.NewReader(io.LimitReader(rd, maxReport))
	head, _ := br.Peek(64)
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%s is not a JSON report (write one with --format json)", name)
	}
	var r report.Report
	if err := json.NewDecoder(br).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading JSON report %s: %w", name, err)
	}
	if r.SchemaVersion != report.SchemaVersion {
		return nil, fmt.Errorf("%s: schema_version %d, this egress reads %d", name, r.SchemaVersion, report.SchemaVersion)
	}
	return &r, nil
}

// Entries returns the entries, sorted by name, port, protocol, process.
func (s *Set) Entries() []*Entry {
	es := make([]*Entry, 0, len(s.entries))
	for _, e := range s.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *Entry) int { return compareKeys(a.Key, b.Key) })
	return es
}

func compareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Process, b.Process))
}

// find returns s's entry for k: the same key, or, when either side does
// not know the process, one of the same destination.
func (s *Set) find(k Key) *Entry {
	if e := s.entries[k]; e != nil {
		return e
	}
	var found *Entry
	dk := k
	dk.Process = ""
	for _, e := range s.byDest[dk] {
		if e.Process == "" || k.Process == "" {
			if found == nil || compareKeys(e.Key, found.Key) < 0 {
				found = e
			}
		}
	}
	return found
}

// Change kinds.
const (
	New     = "new"
	Gone    = "gone"
	Changed = "changed"
)

// Change is one difference between two reports.
type Change struct {
	Kind     string
	Key      Key
	Old, New []string // outcomes in the old and the new report
}

// Diff lists what is new in cur since old, what is gone, and what changed
// outcome: new first, then changed, then gone, each sorted by key.
func Diff(old, cur *Set) []Change {
	var out []Change
	for _, e := range cur.Entries() {
		o := old.find(e.Key)
		switch {
		case o == nil:
			out = append(out, Change{Kind: New, Key: e.Key, New: e.Outcomes})
		case !slices.Equal(o.Outcomes, e.Outcomes):
			out = append(out, Change{Kind: Changed, Key: e.Key, Old: o.Outcomes, New: e.Outcomes})
		}
	}
	for _, e := range old.Entries() {
		if cur.find(e.Key) == nil {
			out = append(out, Change{Kind: Gone, Key: e.Key, Old: e.Outcomes})
		}
	}
	rank := map[string]int{New: 0, Changed: 1, Gone: 2}
	slices.SortStableFunc(out, func(a, b Change) int {
		return cmp.Or(cmp.Compare(rank[a.Kind], rank[b.Kind]), compareKeys(a.Key, b.Key))
	})
	return out
}

// Allowed turns the set into allow entries (rules.Extend): each
// destination by its name's family or its address, port, protocol and
// process. A failed lookup allows only the lookup (Proto "dns"): egress run
// --block forwards the name again, but a connection to it is as new as
// egress diff says it is. Names no policy entry can hold (such as the
// analyzer's "(other destinations)") are returned in skipped.
func (s *Set) Allowed() (as []rules.Allowed, skipped []Key) {
	for _, e := range s.Entries() {
		a := rules.Allowed{Process: e.Process, Port: e.Port, Proto: e.Proto}
		switch {
		case e.ip.IsValid():
			ip := e.ip.Unmap().WithZone("")
			a.Prefix = netip.PrefixFrom(ip, ip.BitLen())
		default:
			a.Host, a.Shards = e.Name, e.sharded
			if err := rules.CheckHost(strings.ReplaceAll(e.Name, "*", "0")); err != nil && e.sharded ||
				!e.sharded && rules.CheckHost(e.Name) != nil {
				skipped = append(skipped, e.Key)
				continue
			}
		}
		as = append(as, a)
	}
	return as, skipped
}
