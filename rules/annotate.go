package rules

import (
	"fmt"
	"os"

	"github.com/egress-dev/egress/report"
)

// LoadCatalogWith parses the embedded catalog plus extra catalog files in
// the same format (a site's own vendors). An extra entry may not reuse an id
// or host pattern of another entry.
func LoadCatalogWith(paths ...string) (*Catalog, error) {
	entries, err := decodeEntries(catalogYAML)
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read catalog: %w", err)
		}
		extra, err := decodeEntries(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		entries = append(entries, extra...)
	}
	c, err := buildCatalog(entries)
	if err != nil && len(paths) > 0 {
		return nil, fmt.Errorf("catalogs %v: %w", paths, err)
	}
	return c, err
}

// Annotate sets the verdict of every connection and lookup in r: the
// catalog's label for known phone-homes, and with a policy whether the
// destination was expected. Either may be nil. It returns how many egress
// calls were unexpected under the policy.
func Annotate(r *report.Report, p *Policy, c *Catalog) (unexpected int) {
	resolvers := Resolvers(r)
	for i := range r.Connections {
		conn := &r.Connections[i]
		v := &report.Verdict{}
		if c != nil && conn.Host != "" {
			if e, ok := c.Match(conn.Host); ok {
				v.Catalog = e.Label()
			}
		}
		if p != nil {
			pv := p.Check(DestOf(conn, resolvers))
			v.Expected, v.Rule = &pv.Allowed, pv.Rule
			if !pv.Allowed && !conn.Loopback {
				unexpected++
			}
		}
		// No policy, no judgement: the verdict then only carries the
		// catalog's label, and is absent without one.
		if p != nil || v.Catalog != "" {
			conn.Verdict = v
		}
	}
	for i := range r.Lookups {
		l := &r.Lookups[i]
		if c == nil {
			continue
		}
		// A lookup is labelled, not judged: the policy judges where the
		// app connects (names, addresses and ports), and a lookup has no
		// port. A name the --block proxy refused is judged by egress run.
		if e, ok := c.Match(l.Name); ok {
			l.Verdict = &report.Verdict{Catalog: e.Label()}
		}
	}
	return unexpected
}
