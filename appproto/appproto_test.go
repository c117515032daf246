package appproto

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clientHello returns the first flight of a real crypto/tls client: with
// Go's default X25519MLKEM768 key share it is larger than one Ethernet
// segment, like the modern browsers' hellos.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		cl := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		cl.SetDeadline(time.Now().Add(5 * time.Second))
		cl.Handshake() // fails when s closes; only its first flight matters
		c.Close()
	}()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := s.Read(buf)
		out = append(out, buf[:n]...)
		if len(out) >= 5 && len(out) >= 5+int(binary.BigEndian.Uint16(out[3:])) {
			return out[:5+int(binary.BigEndian.Uint16(out[3:]))]
		}
		if err != nil {
			t.Fatalf("reading the ClientHello: %v", err)
		}
	}
}

// splitRecords re-frames a one-record handshake into two records.
func splitRecords(rec []byte, at int) []byte {
	body := rec[5:]
	hdr := func(n int) []byte { return []byte{22, 3, 1, byte(n >> 8), byte(n)} }
	return bytes.Join([][]byte{hdr(at), body[:at], hdr(len(body) - at), body[at:]}, nil)
}

type sniResult struct {
	Name   string
	Status Status
	Need   int
}

func TestClientHelloSNI(t *testing.T) {
	hello := clientHello(t, "Www.Example.COM")
	if len(hello) < 1500 {
		t.Logf("ClientHello is %d bytes: no post-quantum key share in this Go version?", len(hello))
	}
	hostile := bytes.Replace(clientHello(t, "aaaaaaaaaaaaaa.example"), []byte("aaaaaaaaaaaaaa"), []byte("\x1b[2J;$(x)\n\x00AB\x7f"), 1)
	noName := clientHello(t, "192.0.2.1") // crypto/tls sends no SNI for an address
	split := splitRecords(hello, 100)
	tests := []struct {
		name string
		in   []byte
		want sniResult
	}{
		{"real hello", hello, sniResult{"www.example.com", Found, 0}},
		{"first segment only", hello[:1448], sniResult{"", NeedMore, len(hello)}},
		{"three bytes", hello[:3], sniResult{"", NeedMore, 9}},
		{"hostile name escaped", hostile, sniResult{`\x1b[2j\x3b\x24\x28x\x29\x0a\x00ab\x7f.example`, Found, 0}},
		{"no server name", noName, sniResult{"", NoName, 0}},
		{"hello over two records", split, sniResult{"www.example.com", Found, 0}},
		{"first of two records", split[:105], sniResult{"", NeedMore, len(split)}},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), sniResult{"", NotTLS, 0}},
		{"tls application data", []byte{23, 3, 3, 0, 10}, sniResult{"", NotTLS, 0}},
		{"server hello", append([]byte{22, 3, 3, 0, 50, 2}, make([]byte, 60)...), sniResult{"", NotTLS, 0}},
		{"empty", nil, sniResult{"", NotTLS, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, st, need := ClientHelloSNI(tt.in)
			if diff := cmp.Diff(tt.want, sniResult{name, st, need}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

type hostResult struct {
	Host string
	OK   bool
}

func TestHTTPHost(t *testing.T) {
	long := strings.Repeat("a", 400)
	tests := []struct {
		name string
		in   string
		want hostResult
	}{
		{"plain", "GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: WWW.Example.com\r\nAccept: */*\r\n\r\n", hostResult{"www.example.com", true}},
		{"port and spaces", "POST /api HTTP/1.0\r\nhOST:   update.example.net:8080  \r\n\r\n", hostResult{"update.example.net", true}},
		{"ipv6 literal", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", hostResult{"[2001:db8::1]", true}},
		{"bare lf", "GET / HTTP/1.1\nHost: a.example\n\n", hostResult{"a.example", true}},
		{"absolute form without host", "GET http://proxy.example:3128/x HTTP/1.1\r\nAccept: */*\r\n\r\n", hostResult{"proxy.example", true}},
		{"no host", "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", hostResult{"", false}},
		{"host line cut", "GET / HTTP/1.1\r\nHost: www.exam", hostResult{"", false}},
		{"hostile", "GET / HTTP/1.1\r\nHost: a\x1b]0;pwn\x07`id`\r\n\r\n", hostResult{`a\x1b]0\x3bpwn\x07\x60id\x60`, true}},
		{"bounded", "GET / HTTP/1.1\r\nHost: " + long + "\r\n\r\n", hostResult{long[:MaxName], true}},
		{"ssh", "SSH-2.0-OpenSSH_9.2\r\n", hostResult{"", false}},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", hostResult{"", false}},
		{"lowercase method", "get / HTTP/1.1\r\nHost: x\r\n\r\n", hostResult{"", false}},
		{"response", "HTTP/1.1 200 OK\r\nHost: x\r\n\r\n", hostResult{"", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := HTTPHost([]byte(tt.in))
			if diff := cmp.Diff(tt.want, hostResult{h, ok}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestNegativeAllocs(t *testing.T) {
	hello := clientHello(t, "www.example.com")
	// Answers of "no": neither TLS nor HTTP, TLS still incomplete, HTTP without a host.
	inputs := [][]byte{[]byte("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), []byte("SSH-2.0-x\r\n"), make([]byte, 2000), hello[:1000], hello}
	if n := testing.AllocsPerRun(100, func() {
		for _, b := range inputs[:4] {
			ClientHelloSNI(b)
		}
		for _, b := range inputs {
			HTTPHost(b)
		}
	}); n != 0 {
		t.Errorf("%v allocations when the answer is no, want 0", n)
	}
}

func BenchmarkClientHelloSNI(b *testing.B) {
	hello := clientHello(b, "www.example.com")
	b.ReportAllocs()
	for b.Loop() {
		ClientHelloSNI(hello)
	}
}

func BenchmarkHTTPHost(b *testing.B) {
	req := []byte("GET /index.html HTTP/1.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\nHost: www.example.com\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		HTTPHost(req)
	}
}

func checkSafe(t *testing.T, s string) {
	if len(s) > 4*MaxName {
		t.Fatalf("name of %d bytes", len(s))
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z') || strings.IndexByte("'\"`$;|&<>(){} ", c) >= 0 {
			t.Fatalf("unsafe byte %#x in %q", c, s)
		}
	}
}

func FuzzClientHelloSNI(f *testing.F) {
	hello := clientHello(f, "www.example.com")
	f.Add(hello)
	f.Add(splitRecords(hello, 100))
	f.Add(clientHello(f, "192.0.2.1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, st, need := ClientHelloSNI(b)
		checkSafe(t, name)
		if (st == Found) != (name != "") {
			t.Fatalf("status %v with name %q", st, name)
		}
		if st == NeedMore && need <= len(b) {
			t.Fatalf("need %d with %d bytes at hand", need, len(b))
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	f.Add([]byte("GET /index.html HTTP/1.1\r\nHost: www.example.com:80\r\n\r\n"))
	f.Add([]byte("GET http://[2001:db8::1]:8080/ HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		host, ok := HTTPHost(b)
		checkSafe(t, host)
		if ok != (host != "") {
			t.Fatalf("ok %v with host %q", ok, host)
		}
	})
}
