package rules

import "testing"

func BenchmarkCheck(b *testing.B) {
	p, err := Load("testdata/shop.yaml")
	if err != nil {
		b.Fatal(err)
	}
	d := Dest{Host: "unknown.example.org", IP: ip("203.0.113.5"), Port: 443, Proto: "tcp", Process: "php-fpm"}
	b.ReportAllocs()
	for b.Loop() {
		if p.Check(d).Allowed {
			b.Fatal("allowed")
		}
	}
}

func BenchmarkCatalogMatch(b *testing.B) {
	c, err := LoadCatalog()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Match("cdn.unknown.example.org"); ok {
			b.Fatal("matched")
		}
	}
}

func BenchmarkLoadCatalog(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadCatalog(); err != nil {
			b.Fatal(err)
		}
	}
}
