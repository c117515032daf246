package rules

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Suggest writes a starter policy that allows exactly the destinations
// given, with the narrowest patterns that cover them: one entry per exact
// host name (or, for an address without a name, a /32 or /128 cidr), per
// protocol and per process, listing the ports seen. Loopback destinations
// and resolvers are left to the allow_loopback and allow_resolvers defaults.
// Entries are sorted and commented with how many calls each covers. Parse
// accepts the result, and every destination given is allowed by it.
func Suggest(dests []Dest) []byte {
	type key struct {
		host, cidr, proto, process string
	}
	type group struct {
		key
		calls   int
		ports   map[uint16]bool
		anyPort bool
	}
	rank := func(k key) int { // names first, then addresses
		if k.host != "" {
			return 0
		}
		return 1
	}
	groups := map[key]*group{}
	var skipped []string
	for _, d := range dests {
		ip := d.IP.Unmap()
		if ip.IsLoopback() || d.Resolver {
			continue
		}
		var k key
		if p, err := parsePattern(d.Host); d.Host != "" && err == nil && !p.glob {
			k.host = p.name
		} else if ip.IsValid() {
			k.cidr = fmt.Sprintf("%s/%d", ip.WithZone(""), ip.BitLen())
		} else {
			skipped = append(skipped, d.Host)
			continue
		}
		if pr := strings.ToLower(d.Proto); pr == "tcp" || pr == "udp" {
			k.proto = pr
		}
		if safeProcess(d.Process) {
			k.process = d.Process
		}
		g := groups[k]
		if g == nil {
			g = &group{key: k, ports: map[uint16]bool{}}
			groups[k] = g
		}
		g.calls++
		if d.Port == 0 {
			g.anyPort = true // a call without a port (e.g. ICMP) needs any port
		} else {
			g.ports[d.Port] = true
		}
	}
	sorted := make([]*group, 0, len(groups))
	for _, g := range groups {
		sorted = append(sorted, g)
	}
	slices.SortFunc(sorted, func(a, b *group) int {
		return cmp.Or(
			cmp.Compare(rank(a.key), rank(b.key)), cmp.Compare(a.host, b.host),
			compareCIDR(a.cidr, b.cidr), cmp.Compare(a.proto, b.proto), cmp.Compare(a.process, b.process))
	})

	var b bytes.Buffer
	b.WriteString("# Starter egress policy written from observed calls. Review before use:\n")
	b.WriteString("# every entry below was seen; nothing else is allowed. See docs/rules.md.\n")
	b.WriteString("allow_loopback: true\nallow_resolvers: true\n")
	if len(sorted) == 0 {
		b.WriteString("allow: []\n")
	} else {
		b.WriteString("allow:\n")
	}
	for _, g := range sorted {
		plural := "s"
		if g.calls == 1 {
			plural = ""
		}
		fmt.Fprintf(&b, "  # %d call%s seen\n", g.calls, plural)
		if g.host != "" {
			fmt.Fprintf(&b, "  - host: %s\n", strconv.Quote(g.host))
		} else {
			fmt.Fprintf(&b, "  - cidr: %s\n", strconv.Quote(g.cidr))
		}
		if len(g.ports) > 0 && !g.anyPort {
			ports := make([]int, 0, len(g.ports))
			for p := range g.ports {
				ports = append(ports, int(p))
			}
			slices.Sort(ports)
			strs := make([]string, len(ports))
			for i, p := range ports {
				strs[i] = strconv.Itoa(p)
			}
			fmt.Fprintf(&b, "    ports: [%s]\n", strings.Join(strs, ", "))
		}
		if g.proto != "" {
			fmt.Fprintf(&b, "    proto: %s\n", g.proto)
		}
		if g.process != "" {
			fmt.Fprintf(&b, "    process: %s\n", strconv.Quote(g.process))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "# %d call(s) had neither a usable name nor an address and are not covered.\n", len(skipped))
	}
	return b.Bytes()
}

// safeProcess says whether a comm can be written as a YAML string and read
// back byte for byte. Other names are left out, which widens the entry to
// any process rather than writing a policy that does not parse.
func safeProcess(s string) bool {
	if s == "" || len(s) > maxComm || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func compareCIDR(a, b string) int {
	if a == b {
		return 0
	}
	pa, ea := parseCIDRLoose(a)
	pb, eb := parseCIDRLoose(b)
	if ea || eb {
		return cmp.Compare(a, b)
	}
	return pa.Addr().Compare(pb.Addr())
}
