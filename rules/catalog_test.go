package rules

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCatalogEntries(t *testing.T) {
	c, err := LoadCatalog()
	if err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}
	if n := len(c.Entries()); n < 40 {
		t.Errorf("catalog has %d entries, want at least 40", n)
	}
	ids := map[string]bool{}
	patterns := map[string]string{}
	for _, e := range c.Entries() {
		for field, v := range map[string]string{"id": e.ID, "vendor": e.Vendor, "product": e.Product,
			"purpose": e.Purpose, "disable": e.Disable, "source": e.Source} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("entry %q: %s is empty", e.ID, field)
			}
		}
		if ids[e.ID] {
			t.Errorf("id %s is repeated", e.ID)
		}
		ids[e.ID] = true
		if u, err := url.Parse(e.Source); err != nil || u.Scheme != "https" || u.Host == "" {
			t.Errorf("entry %s: source %q is not an https URL", e.ID, e.Source)
		}
		if len(e.Hosts) == 0 {
			t.Errorf("entry %s: no hosts", e.ID)
		}
		for _, h := range e.Hosts {
			p, err := parsePattern(h)
			if err != nil {
				t.Errorf("entry %s: %v", e.ID, err)
				continue
			}
			if p.String() != h {
				t.Errorf("entry %s: pattern %q is not in normal form %q", e.ID, h, p)
			}
			if other, ok := patterns[p.String()]; ok {
				t.Errorf("pattern %s is in entries %s and %s", p, other, e.ID)
			}
			patterns[p.String()] = e.ID
			// Every pattern must lead back to its own entry.
			probe := h
			if p.glob {
				probe = "x." + p.name
			}
			if got, ok := c.Match(probe); !ok || got.ID != e.ID {
				t.Errorf("Match(%s) = %v, want entry %s", probe, got, e.ID)
			}
		}
	}
}

func TestCatalogRejects(t *testing.T) {
	const ok = "  - {id: a, vendor: V, product: P, purpose: p, hosts: [a.example.com], disable: d, source: https://example.com/}\n"
	tests := []struct{ name, yaml, want string }{
		{"duplicate id", "entries:\n" + ok + ok, "id is repeated"},
		{"duplicate pattern", "entries:\n" + ok + strings.Replace(ok, "id: a", "id: b", 1), "host a.example.com is already in entry a"},
		{"http source", "entries:\n" + strings.Replace(ok, "https:", "http:", 1), "is not an https URL"},
		{"missing disable", "entries:\n" + strings.Replace(ok, "disable: d", "disable: \"\"", 1), "disable is empty"},
		{"bad pattern", "entries:\n" + strings.Replace(ok, "a.example.com", "a.*.example.com", 1), "only globs like"},
		{"unknown field", "entries:\n" + strings.Replace(ok, "id: a", "id: a, url: x", 1), "field url not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCatalog([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseCatalog error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCatalogMatch(t *testing.T) {
	c, err := parseCatalog([]byte(`entries:
  - {id: wide, vendor: V, product: Vendor, purpose: everything, hosts: ["*.vendor.example"], disable: x, source: https://example.com/}
  - {id: narrow, vendor: V, product: Vendor, purpose: telemetry, hosts: ["*.t.vendor.example"], disable: y, source: https://example.com/}
  - {id: exact, vendor: V, product: Vendor, purpose: update check, hosts: [update.t.vendor.example], disable: z, source: https://example.com/}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want string // entry id, "" for no match
	}{
		{"api.vendor.example", "wide"},
		{"a.b.vendor.example", "wide"},
		{"vendor.example", ""},
		{"x.t.vendor.example", "narrow"},
		{"t.vendor.example", "wide"}, // the apex of the narrower glob falls to the wider one
		{"update.t.vendor.example", "exact"},
		{"UPDATE.T.Vendor.Example.", "exact"},
		{"x.update.t.vendor.example", "narrow"},
		{"othervendor.example", ""},
	}
	for _, tt := range tests {
		e, ok := c.Match(tt.host)
		got := ""
		if ok {
			got = e.ID
		}
		if got != tt.want {
			t.Errorf("Match(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestLabel(t *testing.T) {
	c, err := LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Match("api.wordpress.org")
	if !ok {
		t.Fatal("api.wordpress.org is not in the catalog")
	}
	want := "WordPress core, plugin and theme version checks; disable with define( 'WP_HTTP_BLOCK_EXTERNAL', true ); in wp-config.php (WP_ACCESSIBLE_HOSTS lists exceptions)"
	if diff := cmp.Diff(want, e.Label()); diff != "" {
		t.Errorf("Label (-want +got):\n%s", diff)
	}
}
