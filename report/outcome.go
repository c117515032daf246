package report

import (
	"fmt"
	"strconv"
	"strings"
)

// Outcome is how a call ended: a code inside the program, its name only at
// the edges (JSON, tables, prose). The JSON names are in
// docs/json-schema.md.
type Outcome uint8

// Connection outcomes.
const (
	Established Outcome = iota + 1 // handshake completed (or the peers went on talking)
	Refused                        // RST answered the SYN (for a lookup: the REFUSED rcode)
	Rejected                       // ICMP unreachable / admin-prohibited answered the SYN
	Timeout                        // no answer; the caller gave up
	Pending                        // no answer when the capture or window ended
	Aborted                        // the server answered, the client did not complete the handshake
	// Lookup outcomes (Timeout, Pending, Rejected and Refused are shared).
	Answered
	NoData
	NXDomain
	ServFail
	// Sent: a call whose answer egress cannot see (a datagram or a packet
	// egress run's blocker saw leave); the policy judges its destination.
	Sent
	// Mixed: the calls a Culprit stands for ended differently.
	Mixed
)

// DNSRefused is a lookup answered REFUSED.
const DNSRefused = Refused

// rcodeBase + N is a lookup answered with rcode N that has no name of its
// own ("rcode-N" on the wire).
const rcodeBase = 16

var outcomeNames = [...]string{
	Established: "established",
	Refused:     "refused",
	Rejected:    "rejected",
	Timeout:     "timeout",
	Pending:     "pending",
	Aborted:     "aborted",
	Answered:    "answered",
	NoData:      "nodata",
	NXDomain:    "nxdomain",
	ServFail:    "servfail",
	Sent:        "sent",
	Mixed:       "mixed",
}

// RcodeOutcome is the outcome of a lookup answered with an rcode that has
// no outcome of its own.
func RcodeOutcome(rcode uint8) Outcome {
	if int(rcode) > 255-rcodeBase {
		return 0
	}
	return Outcome(rcodeBase + rcode)
}

// String is the outcome's name in the report ("" for the zero value).
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	if o >= rcodeBase {
		return "rcode-" + strconv.Itoa(int(o-rcodeBase))
	}
	return fmt.Sprintf("outcome-%d", uint8(o))
}

// ParseOutcome reads an outcome's name, as written by String.
func ParseOutcome(s string) (Outcome, bool) {
	for i, n := range outcomeNames {
		if n != "" && n == s {
			return Outcome(i), true
		}
	}
	if n, ok := strings.CutPrefix(s, "rcode-"); ok {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 && v <= 255-rcodeBase {
			return Outcome(rcodeBase + v), true
		}
	}
	return 0, s == ""
}

// Failed says whether the outcome means the caller did not get what it
// asked for (the headline's and the hosts' failed calls).
func (o Outcome) Failed() bool {
	switch o {
	case Timeout, Pending, Refused, Rejected, ServFail, NXDomain:
		return true
	}
	return false
}

// MarshalText writes the outcome's name (JSON, YAML).
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an outcome's name (reports read back: rules suggest).
func (o *Outcome) UnmarshalText(b []byte) error {
	v, ok := ParseOutcome(string(b))
	if !ok {
		return fmt.Errorf("unknown outcome %q", b)
	}
	*o = v
	return nil
}
