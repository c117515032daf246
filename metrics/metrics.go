// Package metrics turns settled calls into Prometheus metrics (via
// prometheus/client_golang): calls, failures by outcome, blocked and lost
// seconds, unexpected calls and lookups, by destination, port, outcome,
// process and container, with every label bounded so a host that calls a
// million names cannot grow the agent or the Prometheus server without
// limit. docs/agent.md lists the metrics.
package metrics

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Other is the label value that stands for every value past a label's bound.
const Other = "other"

// Limits bound each label's distinct values; zero picks the default.
type Limits struct {
	Destinations int // default 100
	Ports        int // default 50
	Processes    int // default 50
	Containers   int // default 200
}

func (l *Limits) setDefaults() {
	for _, p := range []struct {
		v   *int
		def int
	}{{&l.Destinations, 100}, {&l.Ports, 50}, {&l.Processes, 50}, {&l.Containers, 200}} {
		if *p.v <= 0 {
			*p.v = p.def
		}
	}
}

// Call is one settled call as the metrics see it.
type Call struct {
	Lookup      bool   // a DNS lookup (Destination is the name asked), else a TCP connection
	Destination string // the name, or the address when no name is known
	Port        uint16
	Outcome     string
	Process     string // command name, "" when unknown
	Container   string // container name or short ID, "" for host processes
	Count       int    // calls folded into this one (at least 1)
	// BlockedSeconds is how long the caller waited for the outcome.
	BlockedSeconds float64
	// Failed: the call did not get what it asked for (its blocked time is
	// also lost time). Unexpected: the rules do not allow it.
	Failed, Unexpected bool
}

// Metrics holds the registry and the bounded label tables. Safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	calls, blocked, lost, unexpected, lookups *prometheus.CounterVec
	overflow                                  *prometheus.CounterVec

	mu                              sync.Mutex
	dests, ports, procs, containers bounded
}

// New makes the metrics, with the Go runtime's and the process's own
// (process_cpu_seconds_total, process_resident_memory_bytes).
func New(lim Limits) *Metrics {
	lim.setDefaults()
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		dests:      bounded{max: lim.Destinations},
		ports:      bounded{max: lim.Ports},
		procs:      bounded{max: lim.Processes},
		containers: bounded{max: lim.Containers},
	}
	callLabels := []string{"destination", "port", "outcome", "process", "container"}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egress_calls_total",
		Help: "Outbound TCP connections settled, by destination, port, outcome (established, timeout, refused, rejected, aborted, pending), process and container."}, callLabels)
	m.blocked = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egress_blocked_seconds_total",
		Help: "Seconds callers waited from the first SYN to the outcome."}, callLabels)
	m.lost = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egress_lost_seconds_total",
		Help: "Seconds callers waited on calls that failed (every outcome but established)."}, callLabels)
	m.unexpected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egress_unexpected_calls_total",
		Help: "Connections and lookups the rules (--rules) do not allow."}, []string{"destination", "port", "process", "container"})
	m.lookups = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egress_lookups_total",
		Help: "DNS lookups settled, by name, outcome (answered, nodata, nxdomain, servfail, refused, timeout, ...), process and container."},
		[]string{"name", "outcome", "process", "container"})
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "egress_agent_label_overflow_total",
		Help: `Calls whose label value was past the label's bound and counted as "other", by label.`}, []string{"label"})
	m.reg.MustRegister(m.calls, m.blocked, m.lost, m.unexpected, m.lookups, m.overflow,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where other collectors (the agent's health) are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// CounterFunc registers a counter read from f at each scrape.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// GaugeFunc registers a gauge read from f at each scrape.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Observe counts one settled call.
func (m *Metrics) Observe(c Call) {
	n := float64(max(c.Count, 1))
	m.mu.Lock()
	dest := m.label(&m.dests, "destination", c.Destination)
	proc := m.label(&m.procs, "process", c.Process)
	cont := m.label(&m.containers, "container", c.Container)
	port := ""
	if !c.Lookup {
		port = m.label(&m.ports, "port", strconv.Itoa(int(c.Port)))
	}
	m.mu.Unlock()
	if c.Lookup {
		m.lookups.WithLabelValues(dest, c.Outcome, proc, cont).Add(n)
		if c.Unexpected {
			m.unexpected.WithLabelValues(dest, "53", proc, cont).Add(n)
		}
		return
	}
	m.calls.WithLabelValues(dest, port, c.Outcome, proc, cont).Add(n)
	m.blocked.WithLabelValues(dest, port, c.Outcome, proc, cont).Add(c.BlockedSeconds)
	if c.Failed {
		m.lost.WithLabelValues(dest, port, c.Outcome, proc, cont).Add(c.BlockedSeconds)
	}
	if c.Unexpected {
		m.unexpected.WithLabelValues(dest, port, proc, cont).Add(n)
	}
}

// label maps a value to itself while its table has room, else to Other.
// The empty value (unknown) is kept as is and takes no room.
func (m *Metrics) label(b *bounded, name, v string) string {
	if v == "" {
		return ""
	}
	if b.admit(v) {
		return v
	}
	m.overflow.WithLabelValues(name).Inc()
	return Other
}

// bounded admits the first max distinct values: a label's series are made
// for those, so the series never go away (counters would reset) and the
// values that come later, past the bound, share "other". On a long-running
// host the first values are the steady ones (the service's own
// dependencies); a flood of new names shows as the overflow counter.
type bounded struct {
	max  int
	seen map[string]struct{}
}

func (b *bounded) admit(v string) bool {
	if _, ok := b.seen[v]; ok {
		return true
	}
	if len(b.seen) >= b.max {
		return false
	}
	if b.seen == nil {
		b.seen = make(map[string]struct{})
	}
	b.seen[v] = struct{}{}
	return true
}
