package report

import (
	"encoding/json"
	"math"
	"time"
)

// Duration is a span of time in a report: a time.Duration inside the
// program, milliseconds (to the microsecond, as a JSON number) on the
// wire, as docs/json-schema.md says of every *_ms field.
type Duration time.Duration

// Micro is d cut to the microsecond, the report's resolution.
func Micro(d time.Duration) Duration { return Duration(d / time.Microsecond * time.Microsecond) }

// MS is d in milliseconds, to the microsecond.
func (d Duration) MS() float64 { return float64(int64(d)/1000) / 1000 }

// MarshalJSON writes d in milliseconds.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.MS()) }

// UnmarshalJSON reads milliseconds (reports read back: rules suggest).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return err
	}
	*d = Duration(math.Round(ms*1e3) * 1e3)
	return nil
}
