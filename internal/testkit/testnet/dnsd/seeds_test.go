package main

import (
	"testing"

	"github.com/egress-dev/egress/internal/testkit/corpustest"
)

// realQueries returns the DNS queries (UDP payloads to port 53) found in the
// recorded captures of testdata/captures: the Go resolver's A and AAAA
// queries with EDNS, as they really went out.
func realQueries(tb testing.TB) [][]byte {
	tb.Helper()
	return corpustest.RecordedQueries(tb)
}

// TestRealQueries answers every query the captures hold, so the fuzz seeds
// are known to be real, parseable queries.
func TestRealQueries(t *testing.T) {
	qs := realQueries(t)
	if len(qs) < 10 {
		t.Fatalf("found %d DNS queries in testdata/captures, want at least 10", len(qs))
	}
	z := newZone(30, "test.")
	for _, q := range qs {
		if _, err := z.answer(q); err != nil {
			t.Errorf("answering recorded query %x: %v", q, err)
		}
	}
}
