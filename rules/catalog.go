package rules

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed catalog.yaml
var catalogYAML []byte

// Entry is one known phone-home endpoint of a product.
type Entry struct {
	ID      string   `yaml:"id"`
	Vendor  string   `yaml:"vendor"`
	Product string   `yaml:"product"`
	Purpose string   `yaml:"purpose"` // e.g. "core version check"
	Hosts   []string `yaml:"hosts"`   // exact names or "*.suffix" globs
	Ports   []uint16 `yaml:"ports,omitempty"`
	Disable string   `yaml:"disable"` // the documented switch, verbatim
	Source  string   `yaml:"source"`  // https URL of the documentation
}

// Label is a one-line description for a report, such as
// "WordPress core version check; disable with define(...)".
func (e *Entry) Label() string {
	return fmt.Sprintf("%s %s; disable with %s", e.Product, e.Purpose, e.Disable)
}

// Catalog maps host names to known phone-home endpoints. It is immutable and
// safe for concurrent use.
type Catalog struct {
	entries []*Entry
	exact   map[string]*Entry
	globs   []globEntry // most specific first
}

type globEntry struct {
	pat   pattern
	entry *Entry
}

// LoadCatalog parses the embedded catalog.
func LoadCatalog() (*Catalog, error) {
	return parseCatalog(catalogYAML)
}

func parseCatalog(data []byte) (*Catalog, error) {
	entries, err := decodeEntries(data)
	if err != nil {
		return nil, err
	}
	return buildCatalog(entries)
}

func decodeEntries(data []byte) ([]*Entry, error) {
	var doc struct {
		Entries []*Entry `yaml:"entries"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parsing catalog: %w", err)
	}
	return doc.Entries, nil
}

// buildCatalog checks entries and indexes them by host pattern.
func buildCatalog(entries []*Entry) (*Catalog, error) {
	c := &Catalog{entries: entries, exact: map[string]*Entry{}}
	ids := map[string]bool{}
	var errs []error
	for _, e := range entries {
		if err := e.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if ids[e.ID] {
			errs = append(errs, fmt.Errorf("catalog entry %s: id is repeated", e.ID))
		}
		ids[e.ID] = true
		for _, h := range e.Hosts {
			p, _ := parsePattern(h) // validated above
			if p.glob {
				if slices.ContainsFunc(c.globs, func(g globEntry) bool { return g.pat == p }) {
					errs = append(errs, fmt.Errorf("catalog entry %s: pattern %s is already in another entry", e.ID, p))
				}
				c.globs = append(c.globs, globEntry{p, e})
				continue
			}
			if other, ok := c.exact[p.name]; ok {
				errs = append(errs, fmt.Errorf("catalog entry %s: host %s is already in entry %s", e.ID, p, other.ID))
			}
			c.exact[p.name] = e
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("checking catalog: %w", err)
	}
	slices.SortStableFunc(c.globs, func(a, b globEntry) int {
		return b.pat.specificity() - a.pat.specificity()
	})
	return c, nil
}

func (e *Entry) validate() error {
	for _, f := range []struct{ name, v string }{
		{"id", e.ID}, {"vendor", e.Vendor}, {"product", e.Product},
		{"purpose", e.Purpose}, {"disable", e.Disable}, {"source", e.Source},
	} {
		if strings.TrimSpace(f.v) == "" {
			return fmt.Errorf("catalog entry %q: %s is empty", e.ID, f.name)
		}
	}
	if len(e.Hosts) == 0 {
		return fmt.Errorf("catalog entry %s: hosts is empty", e.ID)
	}
	for _, h := range e.Hosts {
		if _, err := parsePattern(h); err != nil {
			return fmt.Errorf("catalog entry %s: %w", e.ID, err)
		}
	}
	for _, p := range e.Ports {
		if p == 0 {
			return fmt.Errorf("catalog entry %s: port 0", e.ID)
		}
	}
	u, err := url.Parse(e.Source)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("catalog entry %s: source %q is not an https URL", e.ID, e.Source)
	}
	return nil
}

// Entries returns the catalog's entries in file order. The caller must not
// modify them.
func (c *Catalog) Entries() []*Entry { return c.entries }

// Match finds the entry for a host name (case-insensitive, trailing dot
// ignored). An exact name wins over a glob, and a longer glob suffix over a
// shorter one.
func (c *Catalog) Match(host string) (*Entry, bool) {
	h := normalizeName(host)
	if e, ok := c.exact[h]; ok {
		return e, true
	}
	for _, g := range c.globs {
		if g.pat.match(h) {
			return g.entry, true
		}
	}
	return nil, false
}
