package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveAndBounds(t *testing.T) {
	m := New(Limits{Destinations: 2, Processes: 1})
	m.Observe(Call{Destination: "api.example", Port: 443, Outcome: "established", Process: "php", Count: 1, BlockedSeconds: 0.01})
	m.Observe(Call{Destination: "api.example", Port: 443, Outcome: "timeout", Process: "php", Count: 3, BlockedSeconds: 9, Failed: true, Unexpected: true})
	m.Observe(Call{Destination: "b.example", Port: 443, Outcome: "refused", Process: "curl", Count: 1, Failed: true})
	m.Observe(Call{Destination: "c.example", Port: 443, Outcome: "refused", Process: "php", Count: 1, Failed: true})
	m.Observe(Call{Lookup: true, Destination: "api.example", Outcome: "answered", Process: "php", Count: 1})

	for _, tc := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(m.calls.WithLabelValues("api.example", "443", "timeout", "php", "")), 3, "timeouts to api.example"},
		{testutil.ToFloat64(m.lost.WithLabelValues("api.example", "443", "timeout", "php", "")), 9, "lost seconds"},
		{testutil.ToFloat64(m.unexpected.WithLabelValues("api.example", "443", "php", "")), 3, "unexpected"},
		// The second process and the third destination are past their bounds.
		{testutil.ToFloat64(m.calls.WithLabelValues("b.example", "443", "refused", Other, "")), 1, "b.example by other process"},
		{testutil.ToFloat64(m.calls.WithLabelValues(Other, "443", "refused", "php", "")), 1, "c.example as other"},
		{testutil.ToFloat64(m.overflow.WithLabelValues("destination")), 1, "destination overflow"},
		{testutil.ToFloat64(m.overflow.WithLabelValues("process")), 1, "process overflow"},
		{testutil.ToFloat64(m.lookups.WithLabelValues("api.example", "answered", "php", "")), 1, "lookup"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	// However many destinations, the series stay bounded.
	for i := 0; i < 1000; i++ {
		m.Observe(Call{Destination: strings.Repeat("x", i%50) + ".example", Port: uint16(i), Outcome: "refused", Process: "php", Count: 1})
	}
	if n := testutil.CollectAndCount(m.calls); n > 2*50*6 {
		t.Errorf("%d call series after 1000 destinations and ports", n)
	}

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`egress_calls_total{container="",destination="api.example",outcome="timeout",port="443",process="php"} 3`, "process_cpu_seconds_total", "go_goroutines"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
