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

// Summary writes the closing object: every top-level field of the JSON
// report, with connections and lookups replaced by their counts.
func (j *JSONL) Summary(r *Report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("write json lines: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("write json lines: %w", err)
	}
	m["type"] = json.RawMessage(`"summary"`)
	m["connections"] = json.RawMessage(fmt.Sprint(len(r.Connections)))
	m["lookups"] = json.RawMessage(fmt.Sprint(len(r.Lookups)))
	return j.line(m)
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
