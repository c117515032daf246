package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// maxChain bounds CNAME chasing so a loop in the zone cannot spin.
const maxChain = 8

// record is one resource record of the zone.
type record struct {
	typ    dnsmessage.Type
	addr   netip.Addr // A, AAAA
	target string     // CNAME, canonical (lower case, trailing dot)
}

// zone is an immutable set of records; it is built once before serving, so
// concurrent lookups need no lock.
type zone struct {
	ttl  uint32
	soa  string // apex named in the SOA of negative answers
	recs map[string][]record
}

func newZone(ttl uint32, soa string) *zone {
	return &zone{ttl: ttl, soa: canonical(soa), recs: map[string][]record{}}
}

// canonical lower-cases a name and makes it absolute, the form used as map key.
func canonical(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// addLine parses "name TYPE value" (TYPE is A, AAAA or CNAME).
func (z *zone) addLine(line string) error {
	f := strings.Fields(line)
	if len(f) != 3 {
		return fmt.Errorf("parsing record %q: want \"name TYPE value\"", line)
	}
	name := canonical(f[0])
	var r record
	switch strings.ToUpper(f[1]) {
	case "A", "AAAA":
		a, err := netip.ParseAddr(f[2])
		if err != nil {
			return fmt.Errorf("parsing record %q: %w", line, err)
		}
		r = record{typ: dnsmessage.TypeA, addr: a}
		if strings.ToUpper(f[1]) == "AAAA" {
			if !a.Is6() || a.Is4In6() {
				return fmt.Errorf("parsing record %q: AAAA needs an IPv6 address", line)
			}
			r.typ = dnsmessage.TypeAAAA
		} else if !a.Is4() {
			return fmt.Errorf("parsing record %q: A needs an IPv4 address", line)
		}
	case "CNAME":
		r = record{typ: dnsmessage.TypeCNAME, target: canonical(f[2])}
	default:
		return fmt.Errorf("parsing record %q: unsupported type %q", line, f[1])
	}
	for _, old := range z.recs[name] {
		if (old.typ == dnsmessage.TypeCNAME) != (r.typ == dnsmessage.TypeCNAME) {
			return fmt.Errorf("parsing record %q: a CNAME cannot share its name with other records", line)
		}
	}
	z.recs[name] = append(z.recs[name], r)
	return nil
}

// readFile adds every record of a zone file; blank lines and # comments are skipped.
func (z *zone) readFile(r io.Reader) error {
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := z.addLine(line); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("reading zone: %w", err)
	}
	return nil
}

var errNotQuery = errors.New("not a standard query")

// answer builds the reply to one query message. It returns an error, and no
// reply, for bytes that are not a query: answering garbage would only teach
// a scanner that we exist.
func (z *zone) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, fmt.Errorf("parsing query header: %w", err)
	}
	if h.Response || h.OpCode != 0 {
		return nil, errNotQuery
	}
	q, err := p.Question()
	if err != nil {
		return nil, fmt.Errorf("parsing question: %w", err)
	}
	rcode, answers, found, err := z.resolve(q)
	if err != nil {
		return nil, err
	}
	m := dnsmessage.Message{
		Header: dnsmessage.Header{
			ID: h.ID, Response: true, Authoritative: true, RCode: rcode,
			RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
		},
		Questions: []dnsmessage.Question{q},
		Answers:   answers,
	}
	if !found {
		// Negative answers carry the SOA so clients may cache them (RFC 2308).
		soa, err := z.soaRecord()
		if err != nil {
			return nil, err
		}
		m.Authorities = []dnsmessage.Resource{soa}
	}
	msg, err := m.AppendPack(make([]byte, 0, 512))
	if err != nil {
		return nil, fmt.Errorf("packing reply: %w", err)
	}
	return msg, nil
}

// resolve returns the answer records for q, following CNAMEs inside the
// zone; found says whether records of the asked type were among them.
func (z *zone) resolve(q dnsmessage.Question) (rcode dnsmessage.RCode, out []dnsmessage.Resource, found bool, err error) {
	if q.Class != dnsmessage.ClassINET {
		return dnsmessage.RCodeRefused, nil, false, nil
	}
	name := strings.ToLower(q.Name.String())
	for range maxChain {
		recs, ok := z.recs[name]
		if !ok {
			return dnsmessage.RCodeNameError, out, false, nil
		}
		owner, err := dnsmessage.NewName(name)
		if err != nil {
			return 0, nil, false, fmt.Errorf("building name %q: %w", name, err)
		}
		hdr := dnsmessage.ResourceHeader{Name: owner, Class: dnsmessage.ClassINET, TTL: z.ttl}
		chase := recs[0].typ == dnsmessage.TypeCNAME && q.Type != dnsmessage.TypeCNAME
		for _, r := range recs {
			if r.typ != q.Type && !chase {
				continue
			}
			var body dnsmessage.ResourceBody
			switch r.typ {
			case dnsmessage.TypeA:
				body = &dnsmessage.AResource{A: r.addr.As4()}
			case dnsmessage.TypeAAAA:
				body = &dnsmessage.AAAAResource{AAAA: r.addr.As16()}
			case dnsmessage.TypeCNAME:
				t, err := dnsmessage.NewName(r.target)
				if err != nil {
					return 0, nil, false, fmt.Errorf("building name %q: %w", r.target, err)
				}
				body = &dnsmessage.CNAMEResource{CNAME: t}
			}
			out = append(out, dnsmessage.Resource{Header: hdr, Body: body})
			found = found || r.typ == q.Type
		}
		if !chase {
			return dnsmessage.RCodeSuccess, out, found, nil
		}
		name = recs[0].target
	}
	return dnsmessage.RCodeServerFailure, out, false, nil
}

func (z *zone) soaRecord() (dnsmessage.Resource, error) {
	var names [3]dnsmessage.Name
	for i, s := range []string{z.soa, "ns." + z.soa, "hostmaster." + z.soa} {
		n, err := dnsmessage.NewName(s)
		if err != nil {
			return dnsmessage.Resource{}, fmt.Errorf("building SOA name %q: %w", s, err)
		}
		names[i] = n
	}
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: names[0], Class: dnsmessage.ClassINET, TTL: z.ttl},
		Body: &dnsmessage.SOAResource{NS: names[1], MBox: names[2], Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, MinTTL: z.ttl},
	}, nil
}
