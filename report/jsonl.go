package report

import (
	"encoding/json"
	"fmt"
	"io"
)

// JSONL writes a report as JSON lines (--format jsonl): one object per
// call as soon as it is settled ("type": "connection" or "lookup", then the
// fields of a connection or lookup of the JSON report), then one summary
// object ("type": "summary": the JSON report without its lists, with
// their lengths). docs/json-schema.md describes it. Each line is written
// at once, so a reader of a pipe sees a call when egress does.
type JSONL struct {
	w io.Writer
}

// NewJSONL writes lines to w.
func NewJSONL(w io.Writer) *JSONL { return &JSONL{w: w} }

// Connection writes one settled connection.
func (j *JSONL) Connection(c *Connection) error {
	return j.line(struct {
		Type string `json:"type"`
		*Connection
	}{"connection", c})
}

// Lookup writes one settled lookup.
func (j *JSONL) Lookup(l *Lookup) error {
	return j.line(struct {
		Type string `json:"type"`
		*Lookup
	}{"lookup", l})
}

// Summary writes the closing object.
func (j *JSONL) Summary(r *Report) error {
	return j.line(struct {
		Type          string   `json:"type"`
		SchemaVersion int      `json:"schema_version"`
		Source        string   `json:"source"`
		Backend       string   `json:"backend"`
		Window        Window   `json:"window"`
		Headline      string   `json:"headline"`
		Local         Local    `json:"local"`
		Connections   int      `json:"connections"`
		Lookups       int      `json:"lookups"`
		Hints         []Hint   `json:"hints"`
		Stats         Stats    `json:"stats"`
		Errors        []string `json:"errors"`
	}{"summary", r.SchemaVersion, r.Source, r.Backend, r.Window, r.Headline, r.Local,
		len(r.Connections), len(r.Lookups), r.Hints, r.Stats, r.Errors})
}

func (j *JSONL) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("write json lines: %w", err)
	}
	if _, err := j.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write json lines: %w", err)
	}
	return nil
}
