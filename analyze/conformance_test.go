package analyze_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture/pcapfile"
	"github.com/egress-dev/egress/dnsmsg"
	"github.com/egress-dev/egress/internal/testkit/corpustest"
	"github.com/egress-dev/egress/report"
)

func corpusDir(t testing.TB) string { return corpustest.Dir(t) }

type truthFile struct {
	TCPAttempts []struct {
		ClientIP   string `json:"client_ip"`
		ClientPort int    `json:"client_port"`
		ServerIP   string `json:"server_ip"`
		ServerPort int    `json:"server_port"`
		FirstSYN   string `json:"first_syn_time"`
		SynCount   int    `json:"syn_count"`
		Outcome    string `json:"outcome"`
		DNSName    string `json:"dns_name"`
	} `json:"tcp_attempts"`
	DNS []struct {
		QName      string   `json:"qname"`
		QType      any      `json:"qtype"` // a name, or a number for types tshark has no name for
		Transport  string   `json:"transport"`
		Client     string   `json:"client"`
		Server     string   `json:"server"`
		QueryTimes []string `json:"query_times"`
		Outcome    string   `json:"outcome"`
	} `json:"dns"`
}

// epochNS parses tshark's "seconds.nanoseconds" time.
func epochNS(s string) int64 {
	sec, frac, _ := strings.Cut(s, ".")
	n, _ := strconv.ParseInt(sec, 10, 64)
	frac = (frac + "000000000")[:9]
	f, _ := strconv.ParseInt(frac, 10, 64)
	return n*1e9 + f
}

// tcpOutcome maps the truth's attempt outcomes to egress's.
var tcpOutcome = map[string][]report.Outcome{
	"established":                     {report.Established},
	"refused":                         {report.Refused},
	"icmp-unreachable":                {report.Rejected},
	"no-reply":                        {report.Timeout, report.Pending},
	"synack-no-ack":                   {report.Aborted},
	"synack-then-client-rst":          {report.Aborted},
	"no-synack-seen-client-continued": {report.Established},
	"no-synack-seen-server-responded": {report.Established},
}

var dnsOutcome = map[string][]report.Outcome{
	"answered":         {report.Answered},
	"nodata":           {report.NoData},
	"nxdomain":         {report.NXDomain},
	"servfail":         {report.ServFail},
	"refused":          {report.DNSRefused},
	"icmp-unreachable": {report.Rejected},
	"no-response":      {report.Timeout, report.Pending},
}

type tally struct{ agree, total int }

func (t tally) rate() float64 {
	if t.total == 0 {
		return 1
	}
	return float64(t.agree) / float64(t.total)
}

func (t *tally) add(ok bool) {
	t.total++
	if ok {
		t.agree++
	}
}

func replayFile(t testing.TB, path string) (*report.Report, error) {
	t.Helper()
	rd, err := pcapfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	an := analyze.New(analyze.Config{LocalAny: true})
	readErr := rd.Run(context.Background(), an)
	an.SourceStats(rd.Stats())
	return an.Finish(), readErr
}

// TestConformance replays every corpus capture with --local any and compares
// attempt outcomes, SYN counts, DNS outcomes and DNS-derived names with the
// tshark-derived truth. Every disagreement is listed (docs/conformance.md).
func TestConformance(t *testing.T) {
	dir := corpusDir(t)
	truths, _ := filepath.Glob(filepath.Join(dir, "*.truth.json"))
	if len(truths) == 0 {
		t.Fatalf("no *.truth.json in %s", dir)
	}
	sort.Strings(truths)
	var outcomes, syns, dns, names tally
	var disagreements []string
	note := func(format string, args ...any) { disagreements = append(disagreements, fmt.Sprintf(format, args...)) }

	for _, tf := range truths {
		capture := strings.TrimSuffix(tf, ".truth.json")
		base := filepath.Base(capture)
		raw, err := os.ReadFile(tf)
		if err != nil {
			t.Fatal(err)
		}
		var truth truthFile
		if err := json.Unmarshal(raw, &truth); err != nil {
			t.Fatalf("%s: %v", tf, err)
		}
		r, err := replayFile(t, capture)
		if r == nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		if err != nil {
			note("%s: read error: %v", base, err)
		}

		type connKey struct {
			client, server string
			start          int64
		}
		conns := map[connKey]report.Connection{}
		for _, c := range r.Connections {
			conns[connKey{c.Src().String(), c.Dst().String(), c.Start.UnixNano()}] = c
		}
		for _, ta := range truth.TCPAttempts {
			k := connKey{joinAP(ta.ClientIP, ta.ClientPort), joinAP(ta.ServerIP, ta.ServerPort), epochNS(ta.FirstSYN)}
			c, ok := conns[k]
			if !ok {
				outcomes.add(false)
				syns.add(false)
				note("%s: attempt %s -> %s at %s (%s) not reported", base, k.client, k.server, ta.FirstSYN, ta.Outcome)
				continue
			}
			okOut := contains(tcpOutcome[ta.Outcome], c.Outcome)
			outcomes.add(okOut)
			if !okOut {
				note("%s: attempt %s -> %s: outcome %s, truth %s", base, k.client, k.server, c.Outcome, ta.Outcome)
			}
			syns.add(c.Attempts == ta.SynCount)
			if c.Attempts != ta.SynCount {
				note("%s: attempt %s -> %s: %d SYNs, truth %d", base, k.client, k.server, c.Attempts, ta.SynCount)
			}
			if ta.DNSName != "" {
				okName := c.NameSource == report.SourceDNS && strings.EqualFold(c.Host, ta.DNSName)
				names.add(okName)
				if !okName {
					note("%s: attempt %s -> %s: name %q (%s), truth %q", base, k.client, k.server, c.Host, c.NameSource, ta.DNSName)
				}
			}
		}

		type lookupKey struct {
			client, server, name, qtype, transport string
			start                                  int64
		}
		lks := map[lookupKey]report.Lookup{}
		for _, l := range r.Lookups {
			lks[lookupKey{l.Client.String(), l.Server.String(), strings.ToLower(l.Name), l.QType, l.Transport, l.Start.UnixNano()}] = l
		}
		for _, q := range truth.DNS {
			if q.Outcome == "response-without-query" {
				continue // nothing to compare: the query is not in the capture
			}
			clientIP, _, _ := strings.Cut(strings.TrimPrefix(q.Client, "["), "]")
			if !strings.HasPrefix(q.Client, "[") {
				clientIP = q.Client[:strings.LastIndexByte(q.Client, ':')]
			}
			qtype, ok := q.QType.(string)
			if !ok {
				n, _ := q.QType.(float64)
				qtype = dnsmsg.TypeString(uint16(n))
			}
			k := lookupKey{clientIP, q.Server, strings.ToLower(q.QName), qtype, q.Transport, epochNS(q.QueryTimes[0])}
			l, ok := lks[k]
			if !ok {
				dns.add(false)
				note("%s: query %s %s from %s to %s at %s (%s) not reported", base, q.QName, q.QType, q.Client, q.Server, q.QueryTimes[0], q.Outcome)
				continue
			}
			okOut := contains(dnsOutcome[q.Outcome], l.Outcome)
			dns.add(okOut)
			if !okOut {
				note("%s: query %s %s from %s: outcome %s, truth %s", base, q.QName, q.QType, q.Client, l.Outcome, q.Outcome)
			}
		}
	}

	summary := fmt.Sprintf("attempt outcomes %d/%d (%.2f%%), SYN counts %d/%d (%.2f%%), DNS outcomes %d/%d (%.2f%%), DNS names %d/%d (%.2f%%)",
		outcomes.agree, outcomes.total, 100*outcomes.rate(), syns.agree, syns.total, 100*syns.rate(),
		dns.agree, dns.total, 100*dns.rate(), names.agree, names.total, 100*names.rate())
	t.Log(summary)
	for _, d := range disagreements {
		t.Log("disagreement: " + d)
	}
	if out := os.Getenv("EGRESS_CONFORMANCE_OUT"); out != "" {
		body := summary + "\n\n" + strings.Join(disagreements, "\n") + "\n"
		if err := os.WriteFile(out, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if outcomes.rate() < 0.99 || syns.rate() < 0.99 || dns.rate() < 0.98 || names.rate() < 0.95 {
		t.Errorf("below target (99%% outcomes and SYN counts, 98%% DNS, 95%% names): %s", summary)
	}
}

func joinAP(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

func contains(list []report.Outcome, s report.Outcome) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
