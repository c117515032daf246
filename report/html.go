package report

import (
	"fmt"
	"html/template"
	"io"
	"time"
)

// maxTimelineRows bounds the rows drawn; failures come first, so none of
// them is left out before a successful call is.
const maxTimelineRows = 300

// WriteHTML writes r as a self-contained HTML page (no scripts, no external
// resources): the headline, a timeline with one bar per call across the
// window (SYN retransmissions as ticks), and the calls as a table. Every
// name from the network goes through html/template's escaping.
func WriteHTML(w io.Writer, r *Report) error {
	page := htmlPage{Report: r, Width: 1040, Label: 330}
	start, end := r.Window.Start, r.Window.End
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(span)
		return float64(page.Label) + min(max(f, 0), 1)*float64(page.Width-page.Label-40)
	}
	add := func(row htmlRow) {
		if len(page.Rows) >= maxTimelineRows {
			page.Hidden++
			return
		}
		row.Y = 30 + 18*len(page.Rows)
		row.YB = row.Y + 12
		page.Rows = append(page.Rows, row)
	}
	for pass := 0; pass < 2; pass++ { // failures first, then the rest
		for _, c := range r.Connections {
			if quiet(c.Outcome) != (pass == 1) {
				continue
			}
			host := c.Host
			if host == "" {
				host = addrText(c.DstIP)
			}
			row := htmlRow{
				Label:   fmt.Sprintf("%s:%d", host, c.DstPort),
				Proc:    proc(c.PID, c.Comm),
				Outcome: c.Outcome.String(), Class: outcomeClass(c.Outcome),
				X1: x(c.Start), X2: max(x(c.End), x(c.Start)+2),
				Title: fmt.Sprintf("%s:%d %s, %d SYNs, blocked %s%s (%s)", host, c.DstPort, c.Outcome, c.Attempts, tildeIf(c.Inferred), durText(c.Blocked.MS()), c.EndBasis),
			}
			for _, st := range c.SynTimes {
				row.Ticks = append(row.Ticks, x(c.Start.Add(time.Duration(st))))
			}
			add(row)
		}
		for _, l := range r.Lookups {
			if quiet(l.Outcome) != (pass == 1) {
				continue
			}
			add(htmlRow{
				Label:   fmt.Sprintf("DNS %s %s", l.Name, l.QType),
				Proc:    proc(l.PID, l.Comm),
				Outcome: l.Outcome.String(), Class: outcomeClass(l.Outcome),
				X1: x(l.Start), X2: max(x(l.End), x(l.Start)+2),
				Title: fmt.Sprintf("%s %s via %s: %s, %d queries, blocked %s%s", l.Name, l.QType, addrPortText(l.Server), l.Outcome, l.Attempts, tildeIf(l.Inferred), durText(l.Blocked.MS())),
			})
		}
	}
	page.Height = 40 + 18*len(page.Rows)
	for i := 0; i <= 4; i++ {
		t := start.Add(span * time.Duration(i) / 4)
		page.Axis = append(page.Axis, htmlTick{X: x(t), Text: fmt.Sprintf("+%.2fs", t.Sub(start).Seconds())})
	}
	if err := htmlTemplate.Execute(w, page); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

func tildeIf(b bool) string {
	if b {
		return "~"
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
}

type htmlRow struct {
	Y, YB              int // top and bottom of the bar
	Label, Proc, Title string
	Outcome, Class     string
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
	"addr":     addrText,
	"addrport": addrPortText,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>egress: {{.Report.Source}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.15em}
.ok{fill:#4a9d5b}.hang{fill:#c0392b}.fail{fill:#e67e22}.none{fill:#999}
td.ok{color:#2e7d32}td.hang{color:#c0392b}td.fail{color:#d35400}
svg text{font:12px monospace}
table{border-collapse:collapse;margin-top:1.5em}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;font:12px monospace}
</style></head><body>
<h1>{{.Report.Headline}}</h1>
<p>source: {{.Report.Source}} ({{.Report.Backend}}); window {{.Report.Window.Start.Format "2006-01-02T15:04:05.000Z07:00"}} to {{.Report.Window.End.Format "15:04:05.000"}}; local addresses ({{.Report.Local.Basis}}): {{range .Report.Local.Addresses}}{{.}} {{end}}</p>
<svg width="{{.Width}}" height="{{.Height}}" role="img" aria-label="timeline of the calls">
{{range .Axis}}<line x1="{{.X}}" y1="18" x2="{{.X}}" y2="{{$.Height}}" stroke="#ddd"/><text x="{{.X}}" y="14" text-anchor="middle">{{.Text}}</text>
{{end}}{{range .Rows}}<g><title>{{.Title}}</title>
<text x="0" y="{{.Y}}" dy="11">{{.Label}}{{if ne .Proc "-"}} {{.Proc}}{{end}}</text>
<rect class="{{.Class}}" x="{{.X1}}" y="{{.Y}}" width="{{sub .X2 .X1}}" height="12" rx="2"/>
{{$y := .Y}}{{$yb := .YB}}{{range .Ticks}}<line x1="{{.}}" y1="{{$y}}" x2="{{.}}" y2="{{$yb}}" stroke="#000"/>{{end}}
</g>
{{end}}</svg>
{{if .Hidden}}<p>{{.Hidden}} more calls are not drawn (failures are drawn first).</p>{{end}}
{{with .Report.Hints}}<h2>Hints</h2><ul>{{range .}}<li>{{.Text}}</li>{{end}}</ul>{{end}}
<table><tr><th>start</th><th>process</th><th>call</th><th>destination</th><th>tries</th><th>outcome</th><th>blocked</th></tr>
{{range .Report.Connections}}<tr><td>{{rel .Start $.Report.Window.Start}}</td><td>{{proc .PID .Comm}}</td><td>{{if .Host}}{{.Host}}{{else}}-{{end}}</td><td>{{addr .DstIP}}:{{.DstPort}}</td><td>{{.Attempts}}</td><td class="{{if eq .Outcome.String "established"}}ok{{else if or (eq .Outcome.String "timeout") (eq .Outcome.String "pending")}}hang{{else}}fail{{end}}">{{.Outcome}}{{if gt .Count 1}} x{{.Count}}{{end}}</td><td>{{if .Inferred}}~{{end}}{{ms .Blocked.MS}}</td></tr>
{{end}}{{range .Report.Lookups}}<tr><td>{{rel .Start $.Report.Window.Start}}</td><td>{{proc .PID .Comm}}</td><td>DNS {{.Name}} {{.QType}}</td><td>{{addrport .Server}}</td><td>{{.Attempts}}</td><td class="{{if or (eq .Outcome.String "answered") (eq .Outcome.String "nodata")}}ok{{else if or (eq .Outcome.String "timeout") (eq .Outcome.String "pending")}}hang{{else}}fail{{end}}">{{.Outcome}}{{if gt .Count 1}} x{{.Count}}{{end}}</td><td>{{if .Inferred}}~{{end}}{{ms .Blocked.MS}}</td></tr>
{{end}}</table>
<p>Generated by egress. Bars run from the first SYN or query to the answer or give-up (~: inferred); ticks mark each SYN.</p>
</body></html>
`))
