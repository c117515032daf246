package gencap

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
)

// The resolver every client asks.
var (
	resolverV4 = netip.AddrFrom4([4]byte{198, 51, 100, 53})
	resolverV6 = netip.MustParseAddr("2001:db8::53")
)

// DNS types, classes and response codes used here.
const (
	typeA     = 1
	typeCNAME = 5
	typeSOA   = 6
	typeAAAA  = 28

	rcodeNoError  = 0
	rcodeServFail = 2
	rcodeNXDomain = 3
)

// name is one entry of the name pool. The answers for a name never change,
// so an analyzer sees consistent DNS for the whole file.
type name struct {
	text  string
	wire  []byte     // the name in DNS wire format
	cname []byte     // wire format of the CNAME target, nil when none
	v4    netip.Addr // invalid when the name has no A record
	v6    netip.Addr // invalid when the name has no AAAA record
	ttl   uint32
	nx    bool   // the name does not exist
	port  uint16 // 443 (TLS) or 80 (HTTP)
	path  string // the HTTP request path
}

var (
	prefixes = []string{"update", "telemetry", "api", "license", "cdn", "metrics", "auth",
		"login", "status", "config", "downloads", "crash", "events", "push", "sync",
		"feeds", "ocsp", "time", "registry", "assets"}
	vendors = []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne",
		"tyrell", "cyberdyne", "soylent", "wonka", "oscorp", "massive", "vandelay",
		"contoso", "fabrikam", "northwind", "tailspin", "adatum", "litware", "proseware",
		"wingtip", "woodgrove", "fourthcoffee", "lucerne", "margie", "trey", "alpine",
		"blueyonder", "coho", "humongous", "wideworld", "nod", "relecloud", "southridge",
		"graphic", "datum", "consolidated", "fineart", "tasmanian"}
	paths = []string{"/api/v1/check", "/update.json", "/v2/telemetry", "/license/verify",
		"/events", "/config?channel=stable", "/ping", "/manifest.xml"}
)

// nameText returns the i-th name of the pool: 800 "prefix.vendor.example"
// names, then the same with a number after the prefix.
func nameText(i int) string {
	p, v := prefixes[i%len(prefixes)], vendors[(i/len(prefixes))%len(vendors)]
	if k := i / (len(prefixes) * len(vendors)); k > 0 {
		p += strconv.Itoa(k)
	}
	return p + "." + v + ".example"
}

// wireName encodes a dotted name in DNS wire format.
func wireName(s string) []byte {
	b := make([]byte, 0, len(s)+2)
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, s[start:i]...)
			start = i + 1
		}
	}
	return append(b, 0)
}

// serverV4 returns the i-th of the 506 IPv4 server addresses (the resolver
// and the .0 and .255 addresses left out).
func serverV4(i int) netip.Addr {
	i %= 506
	if i < 253 {
		h := byte(i + 1)
		if h >= 53 {
			h++ // skip the resolver
		}
		return netip.AddrFrom4([4]byte{198, 51, 100, h})
	}
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(i - 253 + 1)})
}

// serverV6 returns the i-th IPv6 server address, 2001:db8:5::/64.
func serverV6(i int) netip.Addr {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05}
	binary.BigEndian.PutUint32(a[12:], uint32(i+1))
	return netip.AddrFrom16(a)
}

// newNames builds the name pool from rng.
func newNames(n int, rng *rand.Rand) []name {
	ttls := []uint32{30, 60, 300, 300, 3600}
	names := make([]name, n)
	for i := range names {
		nm := &names[i]
		nm.text = nameText(i)
		nm.wire = wireName(nm.text)
		nm.ttl = ttls[rng.IntN(len(ttls))]
		nm.path = paths[rng.IntN(len(paths))]
		nm.port = 443
		if rng.IntN(5) == 0 {
			nm.port = 80
		}
		if i > 0 && rng.IntN(20) == 0 { // name 0, the most popular, exists
			nm.nx = true
			continue
		}
		if rng.IntN(20) != 0 {
			nm.v4 = serverV4(rng.IntN(506))
		}
		if !nm.v4.IsValid() || rng.IntN(10) < 3 {
			nm.v6 = serverV6(rng.IntN(n))
		}
		if rng.IntN(5) == 0 {
			nm.cname = wireName("edge" + strconv.Itoa(rng.IntN(n/8+1)) + "." + vendors[rng.IntN(len(vendors))] + ".cdn.example")
		}
	}
	return names
}

// soaRR is the authority record of negative answers, uncompressed.
var soaRR = func() []byte {
	b := wireName("example")
	b = binary.BigEndian.AppendUint16(b, typeSOA)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint32(b, 300)
	rdata := append(wireName("ns.example"), wireName("hostmaster.example")...)
	for _, v := range []uint32{2025010101, 7200, 900, 1209600, 300} {
		rdata = binary.BigEndian.AppendUint32(rdata, v)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}()

// dnsQuery writes a recursive query for nm into p and returns its length.
func dnsQuery(p []byte, id uint16, nm *name, qtype uint16) int {
	b := p[:0]
	b = binary.BigEndian.AppendUint16(b, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	b = append(b, nm.wire...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1)
	return len(b)
}

// dnsAnswer writes the resolver's answer to the query for nm into p and
// returns its length. The rcode is NXDOMAIN for names that do not exist,
// SERVFAIL when servfail is set, else NOERROR with the CNAME and address
// records, or NODATA (no address of that type) with an SOA.
func dnsAnswer(p []byte, id uint16, nm *name, qtype uint16, servfail bool) int {
	b := p[:0]
	b = binary.BigEndian.AppendUint16(b, id)
	rcode := byte(rcodeNoError)
	switch {
	case servfail:
		rcode = rcodeServFail
	case nm.nx:
		rcode = rcodeNXDomain
	}
	b = append(b, 0x81, 0x80|rcode, 0, 1) // QR, RD, RA; one question
	counts := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0) // answer, authority, additional: set below
	b = append(b, nm.wire...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1)
	if rcode != rcodeNoError || nm.nx {
		if rcode == rcodeNXDomain {
			b = append(b, soaRR...)
			b[counts+3] = 1
		}
		return len(b)
	}
	var an byte
	owner := uint16(0xc00c) // pointer to the question name
	if nm.cname != nil {
		b = append(b, 0xc0, 0x0c)
		b = binary.BigEndian.AppendUint16(b, typeCNAME)
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint32(b, nm.ttl)
		b = binary.BigEndian.AppendUint16(b, uint16(len(nm.cname)))
		owner = 0xc000 | uint16(len(b))
		b = append(b, nm.cname...)
		an++
	}
	addr := nm.v4
	if qtype == typeAAAA {
		addr = nm.v6
	}
	if !addr.IsValid() {
		b = append(b, soaRR...)
		b[counts+1] = an
		b[counts+3] = 1
		return len(b)
	}
	b = binary.BigEndian.AppendUint16(b, owner)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint32(b, nm.ttl)
	if addr.Is4() {
		a := addr.As4()
		b = binary.BigEndian.AppendUint16(b, 4)
		b = append(b, a[:]...)
	} else {
		a := addr.As16()
		b = binary.BigEndian.AppendUint16(b, 16)
		b = append(b, a[:]...)
	}
	b[counts+1] = an + 1
	return len(b)
}
