package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

var (
	topKeys   = []string{"allow", "deny", "allow_loopback", "allow_resolvers"}
	entryKeys = []string{"host", "cidr", "port", "ports", "proto", "process", "comment"}
)

// maxComm is the longest comm the kernel keeps (TASK_COMM_LEN minus the NUL).
const maxComm = 15

// Parse parses a policy. name is used in error messages, usually the file
// path. On any mistake it returns a nil Policy and an Errors value listing
// every mistake found, each as "NAME:LINE: what is wrong (what to do)".
func Parse(name string, data []byte) (*Policy, error) {
	p := &parser{file: name}
	pol := p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return pol, nil
}

type parser struct {
	file string
	errs Errors
}

func (p *parser) errf(line int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) parse(data []byte) *Policy {
	if len(data) > maxPolicySize {
		p.errf(1, "policy is larger than %d bytes (a policy lists destinations, not data)", maxPolicySize)
		return nil
	}
	// The YAML library reports encoding problems without a line; find it.
	if line, msg := badBytes(data); line > 0 {
		p.errf(line, "%s", msg)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errf(1, "policy is empty (add an allow: list; allow: [] allows nothing)")
			return nil
		}
		p.yamlErr(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errf(extra.Line, "a second YAML document starts here (keep one policy per file)")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.yamlErr(err)
		return nil
	}
	if len(doc.Content) == 0 {
		p.errf(1, "policy is empty (add an allow: list; allow: [] allows nothing)")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errf(root.Line, "policy is a %s, not a mapping (start with allow:)", kindName(root))
		return nil
	}
	pol := &Policy{name: p.file, allowLoopback: true, allowResolvers: true}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if !p.key(k, seen, topKeys, "top-level") {
			continue
		}
		switch k.Value {
		case "allow":
			pol.allow = p.entries(k, v)
		case "deny":
			pol.deny = p.entries(k, v)
		case "allow_loopback":
			p.boolean(k, v, &pol.allowLoopback)
		case "allow_resolvers":
			p.boolean(k, v, &pol.allowResolvers)
		}
	}
	if _, ok := seen["allow"]; !ok {
		p.errf(root.Line, "no allow list (add allow: with the destinations the app may reach; allow: [] allows nothing)")
	}
	return pol
}

func (p *parser) yamlErr(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			p.yamlMsg(m)
		}
		return
	}
	p.yamlMsg(err.Error())
}

func (p *parser) yamlMsg(m string) {
	m = strings.TrimPrefix(m, "yaml: ")
	if sm := yamlLine.FindStringSubmatch("yaml: " + m); sm != nil {
		line, _ := strconv.Atoi(sm[1])
		if parserError(sm[2]) {
			line++
		}
		p.errf(line, "YAML syntax: %s (check indentation and quoting)", sm[2])
		return
	}
	p.errf(1, "YAML syntax: %s", m)
}

// parserError says whether a YAML message comes from the library's parser
// rather than its scanner: the parser reports 0-based lines, the scanner
// 1-based ones (go.yaml.in/yaml/v3 v3.0.6, yaml.go: parser.fail).
func parserError(msg string) bool {
	for _, m := range []string{
		"did not find expected <document start>",
		"did not find expected node content",
		"did not find expected key",
		"did not find expected '-' indicator",
		"did not find expected ',' or ']'",
		"did not find expected ',' or '}'",
	} {
		if strings.HasPrefix(msg, m) {
			return true
		}
	}
	return false
}

// badBytes finds the first byte the YAML library would reject without
// saying where: invalid UTF-8 or a control character.
func badBytes(data []byte) (line int, msg string) {
	line = 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, "invalid UTF-8 (save the file as UTF-8)"
		case r == '\n':
			line++
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return line, fmt.Sprintf("control character %U (remove it)", r)
		}
		i += size
	}
	return 0, ""
}

// key checks a mapping key: a known, unrepeated plain string.
func (p *parser) key(k *yaml.Node, seen map[string]int, known []string, where string) bool {
	if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
		p.errf(k.Line, "%s key is a %s (keys are names like %s)", where, kindName(k), known[0])
		return false
	}
	if first, ok := seen[k.Value]; ok {
		p.errf(k.Line, "%s is repeated (first at line %d; keep one)", k.Value, first)
		return false
	}
	seen[k.Value] = k.Line
	for _, c := range known {
		if k.Value == c {
			return true
		}
	}
	hint := "known keys: " + strings.Join(known, ", ")
	if c := closest(k.Value, known); c != "" {
		hint = "did you mean " + c + "?"
	} else if where == "entry" && strings.Contains(k.Value, ".") {
		// "- api.github.com: 443" is a YAML mapping, not the one-line form.
		hint = "for the one-line form write " + k.Value + ":PORT with no space after the colon"
	}
	p.errf(k.Line, "unknown %s key %q (%s)", where, k.Value, hint)
	return false
}

func (p *parser) boolean(k, v *yaml.Node, dst *bool) {
	if v.Kind == yaml.AliasNode {
		p.errf(v.Line, "YAML aliases are not supported (write the value out)")
		return
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" {
		p.errf(v.Line, "%s must be true or false, not %s", k.Value, describe(v))
		return
	}
	if err := v.Decode(dst); err != nil {
		p.errf(v.Line, "%s must be true or false: %v", k.Value, err)
	}
}

func (p *parser) entries(k, v *yaml.Node) []rule {
	switch {
	case v.Kind == yaml.AliasNode:
		p.errf(v.Line, "YAML aliases are not supported (write the entries out)")
		return nil
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		p.errf(k.Line, "%s has no list (write %s: [] for none, or entries starting with \"- \" indented below it)", k.Value, k.Value)
		return nil
	case v.Kind != yaml.SequenceNode:
		p.errf(v.Line, "%s must be a list of entries, not %s (start each entry with \"- \")", k.Value, describe(v))
		return nil
	}
	rules := make([]rule, 0, len(v.Content))
	for _, e := range v.Content {
		if r, ok := p.entry(k.Value, e); ok {
			rules = append(rules, r)
		}
	}
	return rules
}

func (p *parser) entry(list string, e *yaml.Node) (rule, bool) {
	if e.Kind == yaml.AliasNode {
		p.errf(e.Line, "YAML aliases are not supported (write the entry out)")
		return rule{}, false
	}
	if e.Kind == yaml.ScalarNode && e.ShortTag() == "!!str" {
		return p.oneLine(list, e)
	}
	if e.Kind != yaml.MappingNode {
		p.errf(e.Line, "%s entry is %s, not a mapping or host:port (write e.g. - api.example.com:443 or - host: api.example.com)", list, describe(e))
		return rule{}, false
	}
	r := rule{pos: fmt.Sprintf("%s:%d", p.file, e.Line)}
	before := len(p.errs)
	seen := map[string]int{}
	var portKey *yaml.Node
	for i := 0; i+1 < len(e.Content); i += 2 {
		k, v := e.Content[i], e.Content[i+1]
		if !p.key(k, seen, entryKeys, "entry") {
			continue
		}
		if v.Kind == yaml.AliasNode {
			p.errf(v.Line, "YAML aliases are not supported (write the value out)")
			continue
		}
		switch k.Value {
		case "host":
			if s, ok := p.str(k, v); ok {
				pat, err := parsePattern(s)
				if err != nil {
					p.errf(v.Line, "%v", err)
				} else {
					r.host = &pat
				}
			}
		case "cidr":
			if s, ok := p.str(k, v); ok {
				r.prefix = p.cidr(v.Line, s)
			}
		case "port", "ports":
			if portKey != nil {
				p.errf(k.Line, "both port and ports are set (use one)")
				continue
			}
			portKey = k
			r.ports = p.ports(k, v)
		case "proto":
			if s, ok := p.str(k, v); ok {
				switch s = strings.ToLower(s); s {
				case "tcp", "udp", "any":
					r.proto = s
				default:
					p.errf(v.Line, "proto %q is not tcp, udp or any", v.Value)
				}
			}
		case "process":
			if s, ok := p.str(k, v); ok {
				switch {
				case s == "":
					p.errf(v.Line, "process is empty (give the command name, or drop the key to match any process)")
				case len(s) > maxComm:
					p.errf(v.Line, "process %q is longer than %d bytes; the kernel truncates command names (use %q)", s, maxComm, s[:maxComm])
				default:
					r.process = s
				}
			}
		case "comment":
			if s, ok := p.str(k, v); ok {
				r.comment = s
			}
		}
	}
	_, hasHost := seen["host"]
	_, hasCIDR := seen["cidr"]
	if !hasHost && !hasCIDR {
		p.errf(e.Line, "%s entry has neither host nor cidr (add one; an entry with only ports would match any destination)", list)
	}
	return r, len(p.errs) == before
}

// oneLine parses the one-line form of an entry, "host:port" as
// harden-runner's users write it: a name or "*.suffix" glob, or a cidr
// (an IPv6 one in brackets), then a port or "lo-hi" range, any protocol
// and process. "- api.github.com:443" is "- host: api.github.com" with
// "port: 443".
func (p *parser) oneLine(list string, e *yaml.Node) (rule, bool) {
	r := rule{pos: fmt.Sprintf("%s:%d", p.file, e.Line)}
	before := len(p.errs)
	s := strings.TrimSpace(e.Value)
	var dest, port string
	if rest, ok := strings.CutPrefix(s, "["); ok {
		d, after, found := strings.Cut(rest, "]")
		if !found || !strings.HasPrefix(after, ":") {
			p.errf(e.Line, "%s entry %q: write [IPv6 cidr]:port, e.g. [2001:db8::/32]:443", list, s)
			return rule{}, false
		}
		dest, port = d, after[1:]
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			p.errf(e.Line, "%s entry %q has no port (write host:port, e.g. %s:443, or the full form - host: %s to allow any port)", list, s, s, s)
			return rule{}, false
		}
		dest, port = s[:i], s[i+1:]
		if strings.Contains(dest, ":") {
			p.errf(e.Line, "%s entry %q: put an IPv6 cidr in brackets, e.g. [2001:db8::/32]:443", list, s)
			return rule{}, false
		}
	}
	switch {
	case dest == "":
		p.errf(e.Line, "%s entry %q has no host before the port (write e.g. api.example.com:443)", list, s)
	case strings.Contains(dest, "/"):
		r.prefix = p.cidr(e.Line, dest)
	default:
		if pat, err := parsePattern(dest); err != nil {
			p.errf(e.Line, "%v", err)
		} else {
			r.host = &pat
		}
	}
	if port == "" {
		p.errf(e.Line, "%s entry %q has an empty port (write e.g. %s:443)", list, s, dest)
	} else if pr, ok := p.portItem(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: port, Line: e.Line}); ok {
		r.ports = []portRange{pr}
	}
	return r, len(p.errs) == before
}

// str reads a scalar string value. Numbers and booleans are refused so
// that e.g. "host: 1e3" or "process: yes" is not silently reinterpreted.
func (p *parser) str(k, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		p.errf(v.Line, "%s must be a string, not %s (quote it)", k.Value, describe(v))
		return "", false
	}
	return v.Value, true
}

func (p *parser) cidr(line int, s string) netip.Prefix {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			p.errf(line, "cidr %q has no prefix length (write %s/%d for one address)", s, a, a.BitLen())
		} else {
			p.errf(line, "cidr %q is not an address/length (write e.g. 198.51.100.0/24 or 2001:db8::/32)", s)
		}
		return netip.Prefix{}
	}
	if pfx.Addr().Zone() != "" {
		p.errf(line, "cidr %q has a zone (drop the %%zone)", s)
		return netip.Prefix{}
	}
	if m := pfx.Masked(); m != pfx {
		p.errf(line, "cidr %q has bits set past the prefix length (did you mean %s?)", s, m)
		return netip.Prefix{}
	}
	if pfx.Addr().Is4In6() {
		p.errf(line, "cidr %q is an IPv4-mapped IPv6 prefix (write the IPv4 form)", s)
		return netip.Prefix{}
	}
	return pfx
}

func (p *parser) ports(k, v *yaml.Node) []portRange {
	var items []*yaml.Node
	switch {
	case k.Value == "port" && v.Kind == yaml.ScalarNode:
		items = []*yaml.Node{v}
	case k.Value == "port":
		p.errf(v.Line, "port must be one number or range, not %s (use ports: [80, 443] for several)", describe(v))
		return nil
	case v.Kind == yaml.SequenceNode && len(v.Content) > 0:
		items = v.Content
	case v.Kind == yaml.SequenceNode:
		p.errf(v.Line, "ports is empty (list at least one port, or drop the key to match any port)")
		return nil
	default:
		p.errf(v.Line, "ports must be a list like [80, 443], not %s (use port: for one)", describe(v))
		return nil
	}
	var out []portRange
	for _, it := range items {
		if r, ok := p.portItem(it); ok {
			out = append(out, r)
		}
	}
	return out
}

func (p *parser) portItem(n *yaml.Node) (portRange, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errf(n.Line, "a port must be a number or a range like \"8000-8100\", not %s", describe(n))
		return portRange{}, false
	}
	if n.ShortTag() == "!!int" {
		v, err := strconv.ParseUint(n.Value, 10, 32)
		if err != nil || v < 1 || v > 65535 {
			p.errf(n.Line, "port %s is not a number from 1 to 65535", n.Value)
			return portRange{}, false
		}
		return portRange{uint16(v), uint16(v)}, true
	}
	lo, hi, isRange := strings.Cut(n.Value, "-")
	if n.ShortTag() != "!!str" {
		p.errf(n.Line, "port %q is not a number (write e.g. 443 or \"8000-8100\")", n.Value)
		return portRange{}, false
	}
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	switch {
	case err1 != nil || err2 != nil:
		p.errf(n.Line, "port %q is not a number or range (write e.g. 443 or \"8000-8100\")", n.Value)
	case a < 1 || b < 1:
		p.errf(n.Line, "port %q includes 0 (ports are 1-65535)", n.Value)
	case a > b:
		p.errf(n.Line, "port range %q runs backwards (write \"%d-%d\")", n.Value, b, a)
	default:
		return portRange{uint16(a), uint16(b)}, true
	}
	return portRange{}, false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	default:
		return "scalar"
	}
}

// describe names a value for an error message.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.AliasNode {
		return "an alias"
	}
	if n.Kind != yaml.ScalarNode {
		return "a " + kindName(n)
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!str":
		return strconv.Quote(n.Value)
	default:
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
	}
}
