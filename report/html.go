package report

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"
)

// maxTimelineRows bounds the rows drawn, and maxTableRows the calls listed
// one by one: failures come first (the longest waits first), so none of
// them is left out before a successful call is. A busy report also gets
// its failures grouped by destination, every one of them, so that 20,000
// calls stay readable without scripts.
const (
	maxTimelineRows  = 300
	busyTimelineRows = 100
	maxTableRows     = 500
	maxGroupRows     = 200
	topHosts         = 10
)

// WriteHTML writes r as a self-contained HTML page (no scripts, no external
// resources): the headline, the hosts that lost most time, a timeline with
// one bar per call across the window (SYN retransmissions as ticks,
// inferred give-ups hatched) and a legend, failed destinations grouped, and
// the calls as a table. Every name from the network goes through
// html/template's escaping.
func WriteHTML(w io.Writer, r *Report) error {
	page := htmlPage{Report: r, Width: 1040, Label: 330, Callers: hasCallers(r.Connections)}
	// The verdict of each destination, as every other format gives it.
	for _, d := range Destinations(r) {
		if r.Check == nil && d.Catalog == "" {
			continue
		}
		if len(page.Dests) >= maxTimelineRows {
			page.HiddenDests++
			continue
		}
		page.Dests = append(page.Dests, d)
	}
	start, end := r.Window.Start, r.Window.End
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(span)
		return float64(page.Label) + min(max(f, 0), 1)*float64(page.Width-page.Label-40)
	}
	busy := len(r.Connections)+len(r.Lookups) > maxTimelineRows || r.HostsSeen > 1
	rows := maxTimelineRows
	if busy {
		rows = busyTimelineRows // the grouped table below has the rest
	}
	add := func(row htmlRow) {
		if len(page.Rows) >= rows {
			page.Hidden++
			return
		}
		row.Y = 30 + 18*len(page.Rows)
		row.YB = row.Y + 12
		page.Rows = append(page.Rows, row)
	}
	conns := make([]*Connection, 0, len(r.Connections))
	for i := range r.Connections {
		conns = append(conns, &r.Connections[i])
	}
	looks := make([]*Lookup, 0, len(r.Lookups))
	for i := range r.Lookups {
		looks = append(looks, &r.Lookups[i])
	}
	// Failures first, the longest waits first; then the rest by start.
	sort.SliceStable(conns, func(i, j int) bool {
		qi, qj := quiet(conns[i].Outcome), quiet(conns[j].Outcome)
		if qi != qj {
			return !qi
		}
		return !qi && conns[i].BlockedMS > conns[j].BlockedMS
	})
	sort.SliceStable(looks, func(i, j int) bool {
		qi, qj := quiet(looks[i].Outcome), quiet(looks[j].Outcome)
		if qi != qj {
			return !qi
		}
		return !qi && looks[i].BlockedMS > looks[j].BlockedMS
	})
	for pass := 0; pass < 2; pass++ { // failures first, then the rest
		for _, c := range conns {
			if quiet(c.Outcome) != (pass == 1) {
				continue
			}
			label := connLabel(c)
			row := htmlRow{
				Label:   label,
				Proc:    proc(c.PID, c.Comm),
				Outcome: c.Outcome.String(), Class: outcomeClass(c.Outcome), Inferred: c.Inferred,
				X1: x(c.Start), X2: max(x(c.End), x(c.Start)+2),
				Title: fmt.Sprintf("%s %s, %d SYNs, blocked %s%s (%s)%s", label, c.Outcome, c.Attempts, tilde(c.Inferred), durText(c.BlockedMS), c.EndBasis, countNote(c.Count)),
			}
			for _, ms := range c.SynTimesMS {
				row.Ticks = append(row.Ticks, x(c.Start.Add(time.Duration(ms*float64(time.Millisecond)))))
			}
			add(row)
		}
		for _, l := range looks {
			if quiet(l.Outcome) != (pass == 1) {
				continue
			}
			label := fmt.Sprintf("DNS %s %s", l.Name, l.QType)
			if l.IsCatchAll() {
				label = fmt.Sprintf("DNS %d other names", l.Destinations)
			}
			add(htmlRow{
				Label:   label,
				Proc:    proc(l.PID, l.Comm),
				Outcome: l.Outcome.String(), Class: outcomeClass(l.Outcome), Inferred: l.Inferred,
				X1: x(l.Start), X2: max(x(l.End), x(l.Start)+2),
				Title: fmt.Sprintf("%s via %s: %s, %d queries, blocked %s%s%s", label, addrPortText(l.Server), l.Outcome, l.Attempts, tilde(l.Inferred), durText(l.BlockedMS), countNote(l.Count)),
			})
		}
	}
	page.Height = 40 + 18*len(page.Rows)
	for i := 0; i <= 4; i++ {
		t := start.Add(span * time.Duration(i) / 4)
		page.Axis = append(page.Axis, htmlTick{X: x(t), Text: fmt.Sprintf("+%.2fs", t.Sub(start).Seconds())})
	}
	if busy {
		cg, okC, okCD := connGroups(r.Connections)
		lg, okL, okLN := lookupGroups(r.Lookups)
		page.ConnGroups, page.LookupGroups = htmlGroups(cg), htmlGroups(lg)
		if n := len(page.ConnGroups) + len(page.LookupGroups); n > maxGroupRows {
			// The largest total waits are kept, connections first.
			keepC := min(len(page.ConnGroups), maxGroupRows)
			keepL := min(len(page.LookupGroups), maxGroupRows-keepC)
			page.MoreGroups = n - keepC - keepL
			page.ConnGroups, page.LookupGroups = page.ConnGroups[:keepC], page.LookupGroups[:keepL]
		}
		page.OKSummary = fmt.Sprintf("and %s that succeeded, to %s; %s answered, of %s",
			countText(okC, "connection"), countText(okCD, "destination"), countText(okL, "lookup"), countText(okLN, "name"))
	}
	page.TopHosts = r.Hosts[:min(len(r.Hosts), topHosts)]
	if len(r.Hosts) > topHosts {
		page.MoreHosts = r.Hosts[topHosts:]
	}
	for _, c := range conns {
		if len(page.Conns)+len(page.Looks) >= maxTableRows {
			page.TableHidden++
			continue
		}
		page.Conns = append(page.Conns, c)
	}
	for _, l := range looks {
		if len(page.Conns)+len(page.Looks) >= maxTableRows {
			page.TableHidden++
			continue
		}
		page.Looks = append(page.Looks, l)
	}
	if err := htmlTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

// htmlGroup is a destGroup for the template.
type htmlGroup struct {
	Dest, Clients, Outcome string
	Calls, Tries           int
	Longest, Sum           float64
	Inferred               bool
}

func htmlGroups(gs []*destGroup) []htmlGroup {
	out := make([]htmlGroup, len(gs))
	for i, g := range gs {
		out[i] = htmlGroup{Dest: g.dest, Clients: g.clientsText(), Outcome: g.outcomeText(), Calls: g.calls, Tries: g.tries,
			Longest: g.longest, Sum: g.sum, Inferred: g.inferred}
	}
	return out
}

// connLabel names a connection's destination; a catch-all says how many
// destinations it stands for, never ":0".
func connLabel(c *Connection) string {
	if c.IsCatchAll() {
		return fmt.Sprintf("%d other destinations", c.Destinations)
	}
	host := c.Host
	if host == "" {
		host = addrText(c.DstIP)
	}
	return fmt.Sprintf("%s:%d", host, c.DstPort)
}

func countNote(n int) string {
	if n > 1 {
		return fmt.Sprintf("; %d calls folded into this record", n)
	}
	return ""
}

func outcomeClass(o Outcome) string {
	switch o {
	case Established, Answered:
		return "ok"
	case Timeout, Pending:
		return "hang"
	case NoData:
		return "none" // an answer, just not one with records
	}
	return "fail"
}

type htmlPage struct {
	Report               *Report
	Rows                 []htmlRow
	Axis                 []htmlTick
	Hidden               int
	Width, Height, Label int

	ConnGroups, LookupGroups []htmlGroup
	OKSummary                string
	TopHosts, MoreHosts      []Host
	MoreGroups               int
	Conns                    []*Connection
	Looks                    []*Lookup
	TableHidden              int
	Callers                  bool           // some call has a call site: show the "called from" column
	Dests                    []*Destination // with their verdicts, worst first
	HiddenDests              int
}

type htmlRow struct {
	Y, YB              int // top and bottom of the bar
	Label, Proc, Title string
	Outcome, Class     string
	Inferred           bool
	X1, X2             float64
	Ticks              []float64
}

type htmlTick struct {
	X    float64
	Text string
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"sub":      func(a, b float64) float64 { return a - b },
	"ms":       durText,
	"rel":      rel,
	"proc":     proc,
	"conn":     connLabel,
	"cls":      outcomeClass,
	"addrPort": addrPortText,
	"stack":    stackText,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>egress: {{.Report.Source}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.15em}h2{font-size:1em;margin-top:1.5em}
.ok{fill:#4a9d5b}.hang{fill:#c0392b}.fail{fill:#e67e22}.none{fill:#999}
rect.inf{fill-opacity:.35;stroke:#000;stroke-width:1;stroke-dasharray:3 2}
td.ok{color:#2e7d32}td.hang{color:#c0392b}td.fail{color:#d35400}td.none{color:#777}
svg text{font:12px monospace}
.legend span{display:inline-block;margin-right:1.2em}
.sw{display:inline-block;width:22px;height:12px;border-radius:2px;vertical-align:middle;margin-right:.3em}
.sw.ok{background:#4a9d5b}.sw.hang{background:#c0392b}.sw.fail{background:#e67e22}.sw.none{background:#999}
.sw.inf{background:rgba(192,57,43,.35);border:1px dashed #000;box-sizing:border-box}
.tick{display:inline-block;width:1px;height:12px;background:#000;vertical-align:middle;margin:0 .5em 0 .3em}
table{border-collapse:collapse;margin-top:1em}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;font:12px monospace}
details{margin:.5em 0}summary{cursor:pointer}
</style></head><body>
<h1>{{.Report.Headline}}</h1>
<p>source: {{.Report.Source}} ({{.Report.Backend}}); window {{.Report.Window.Start.Format "2006-01-02T15:04:05.000Z07:00"}} to {{.Report.Window.End.Format "15:04:05.000"}}</p>
<details><summary>local addresses ({{.Report.Local.Basis}}): {{len .Report.Local.Addresses}}</summary><p>{{range .Report.Local.Addresses}}{{.}} {{end}}</p></details>
{{if .TopHosts}}<h2>Hosts that lost the most time</h2>
<table><tr><th>host</th><th>processes</th><th>lost</th><th>active</th><th>calls</th><th>failed</th><th>top culprits</th></tr>
{{range .TopHosts}}{{template "host" .}}{{end}}</table>
{{if .MoreHosts}}<details><summary>{{len .MoreHosts}} more of the {{.Report.HostsSeen}} hosts</summary><table>{{range .MoreHosts}}{{template "host" .}}{{end}}</table></details>{{end}}{{end}}
{{with .Dests}}<h2>Verdict</h2>
<table><tr><th></th><th>destination</th><th>process</th><th>outcome</th><th>calls</th><th>waited</th><th>verdict</th></tr>
{{range .}}<tr><td class="{{if .Fails}}hang{{else if or .Unexpected .Failed}}fail{{else}}ok{{end}}">{{if .Fails}}FAILS{{else if .Unexpected}}unexpected{{else}}ok{{end}}</td><td>{{.ID}}</td><td>{{range $i, $p := .Processes}}{{if $i}}, {{end}}{{$p}}{{end}}</td><td>{{.OutcomeText}}</td><td>{{.Calls}}</td><td>{{ms .BlockedMS}}</td><td>{{.VerdictText}}{{if .Catalog}}{{if .VerdictText}}; {{end}}known phone-home: {{.Catalog}}{{end}}</td></tr>
{{end}}</table>
{{end}}{{if .HiddenDests}}<p>{{.HiddenDests}} more destinations are not listed (failing ones are listed first).</p>
{{end}}<h2>Timeline</h2>
<p class="legend"><span><i class="sw ok"></i>answered / established</span><span><i class="sw hang"></i>unanswered (timeout, pending)</span><span><i class="sw fail"></i>refused, rejected, NXDOMAIN, SERVFAIL</span><span><i class="sw none"></i>answered without data</span><span><i class="sw hang inf"></i>give-up inferred (not seen)</span><span><i class="tick"></i>SYN sent</span></p>
<svg width="{{.Width}}" height="{{.Height}}" role="img" aria-label="timeline of the calls">
{{range .Axis}}<line x1="{{.X}}" y1="18" x2="{{.X}}" y2="{{$.Height}}" stroke="#ddd"/><text x="{{.X}}" y="14" text-anchor="middle">{{.Text}}</text>
{{end}}{{range .Rows}}<g><title>{{.Title}}</title>
<text x="0" y="{{.Y}}" dy="11">{{.Label}}{{if ne .Proc "-"}} {{.Proc}}{{end}}</text>
<rect class="{{.Class}}{{if .Inferred}} inf{{end}}" x="{{.X1}}" y="{{.Y}}" width="{{sub .X2 .X1}}" height="12" rx="2"/>
{{$y := .Y}}{{$yb := .YB}}{{range .Ticks}}<line x1="{{.}}" y1="{{$y}}" x2="{{.}}" y2="{{$yb}}" stroke="#000"/>{{end}}
</g>
{{end}}</svg>
{{if .Hidden}}<p>{{.Hidden}} more records are not drawn (failures are drawn first, the longest waits first).</p>{{end}}
{{with .Report.Hints}}<h2>Hints</h2><ul>{{range .}}<li>{{.Text}}</li>{{end}}</ul>{{end}}
{{if or .ConnGroups .LookupGroups .OKSummary}}<h2>Failed calls by destination</h2>
<table><tr><th>destination</th><th>clients</th><th>calls</th><th>tries</th><th>outcome</th><th>longest wait</th><th>total wait</th></tr>
{{range .ConnGroups}}<tr><td>{{.Dest}}</td><td>{{.Clients}}</td><td>{{.Calls}}</td><td>{{.Tries}}</td><td class="fail">{{.Outcome}}</td><td>{{if .Inferred}}~{{end}}{{ms .Longest}}</td><td>{{ms .Sum}}</td></tr>
{{end}}{{range .LookupGroups}}<tr><td>DNS {{.Dest}}</td><td>{{.Clients}}</td><td>{{.Calls}}</td><td>{{.Tries}}</td><td class="fail">{{.Outcome}}</td><td>{{if .Inferred}}~{{end}}{{ms .Longest}}</td><td>{{ms .Sum}}</td></tr>
{{end}}</table>{{if .MoreGroups}}<p>{{.MoreGroups}} more failed destinations, with shorter waits (<code>--format json</code> has them all).</p>{{end}}<p>{{.OKSummary}}.</p>{{end}}
<h2>Calls</h2>
<table><tr><th>start</th><th>process</th><th>call</th><th>destination</th><th>tries</th><th>outcome</th><th>blocked</th>{{if .Callers}}<th>called from</th>{{end}}</tr>
{{range .Conns}}<tr><td>{{rel .Start $.Report.Window.Start}}</td><td>{{proc .PID .Comm}}</td><td>{{if .IsCatchAll}}-{{else if .Host}}{{.Host}}{{else}}-{{end}}</td><td>{{conn .}}</td><td>{{.Attempts}}</td><td class="{{cls .Outcome}}">{{.Outcome}}{{if gt .Count 1}} x{{.Count}}{{end}}</td><td>{{if .Inferred}}~{{end}}{{ms .BlockedMS}}</td>{{if $.Callers}}<td title="{{stack .Stack}}">{{or .CalledFrom "-"}}</td>{{end}}</tr>
{{end}}{{range .Looks}}<tr><td>{{rel .Start $.Report.Window.Start}}</td><td>{{proc .PID .Comm}}</td><td>DNS {{if .IsCatchAll}}{{.Destinations}} other names{{else}}{{.Name}} {{.QType}}{{end}}</td><td>{{addrPort .Server}}</td><td>{{.Attempts}}</td><td class="{{cls .Outcome}}">{{.Outcome}}{{if gt .Count 1}} x{{.Count}}{{end}}</td><td>{{if .Inferred}}~{{end}}{{ms .BlockedMS}}</td>{{if $.Callers}}<td>-</td>{{end}}</tr>
{{end}}</table>
{{if .TableHidden}}<p>{{.TableHidden}} more records are not listed (failures first); <code>--format json</code> has them all.</p>{{end}}
<p>Generated by egress. Bars run from the first SYN or query to the answer or give-up; hatched bars end at an inferred give-up (~); ticks mark each SYN.</p>
</body></html>
{{define "host"}}<tr><td>{{if .Addresses}}{{range .Addresses}}{{.}} {{end}}{{else}}{{.Address}}{{end}}</td><td>{{range .Processes}}{{.}} {{end}}</td><td>{{ms .LostMS}}</td><td>{{ms .ActiveMS}}</td><td>{{.Calls}}</td><td>{{.Failed}}</td><td>{{range .Culprits}}{{if .Lookup}}DNS {{end}}{{.Destination}} ({{.Outcome}} x{{.Calls}}, up to {{if .Inferred}}~{{end}}{{ms .LongestMS}}) {{end}}</td></tr>
{{end}}`))
