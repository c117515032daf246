package analyze

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/egress-dev/egress/report"
)

// retransmitGap is the longest a sender in SYN_SENT can stay silent before
// its next SYN is due: twice the last interval (schedules double, or stay
// linear at 1 s on Linux >= 6.5), or 3 s after a lone SYN (the initial RTO
// of older stacks), plus slack for timer jitter.
func (at *attempt) retransmitGap() int64 {
	d := int64(3 * time.Second)
	if n := at.syns; n >= 2 && n <= maxSynTimes {
		if iv := at.synTimes[n-1] - at.synTimes[n-2]; iv > 0 {
			d = 2 * iv
		}
	}
	return d + d/4 + int64(200*time.Millisecond)
}

// expectedInterval is the shortest wait before the next SYN: the last
// interval, or 1 s (Linux's initial RTO) after a lone SYN.
func (at *attempt) expectedInterval() int64 {
	if n := at.syns; n >= 2 && n <= maxSynTimes {
		if iv := at.synTimes[n-1] - at.synTimes[n-2]; iv > 0 {
			return iv
		}
	}
	return int64(time.Second)
}

func isTimeoutErrno(errno int) bool { return errno == int(syscall.ETIMEDOUT) }

// resolve decides an attempt's outcome as of time end (the window's end
// when the attempt is still open then).
func (a *Analyzer) resolve(at *attempt, end int64) (outcome report.Outcome, t int64, basis string, inferred bool) {
	switch at.ans {
	case ansSynAck:
		// Any ACK or data from the client after the SYN-ACK completes the
		// handshake from the analyzer's view (the exact ACK may be lost).
		if at.handshakeAcked {
			return report.Established, at.ansTime, "answer", false
		}
		return report.Aborted, at.ansTime, "answer", false
	case ansRST:
		return report.Refused, max(at.ansTime, at.lastAns), "answer", false
	case ansICMP:
		// The caller stays blocked while the stack retries after a soft
		// error: until the last rejection, or the socket's close if seen.
		return report.Rejected, max(at.ansTime, at.lastAns, at.closed), "answer", false
	case ansKernelError:
		switch syscall.Errno(at.errno) {
		case syscall.ECONNREFUSED:
			return report.Refused, at.ansTime, "kernel", false
		default:
			return report.Rejected, at.ansTime, "kernel", false
		}
	}
	switch {
	case at.established != 0:
		return report.Established, at.established, "kernel", false
	case at.clientContinued || at.serverResponded:
		return report.Established, at.start, "peers-continued", true
	case at.kernelTimeout:
		return report.Timeout, at.closed, "kernel", false
	case at.closed != 0:
		return report.Timeout, at.closed, "socket-closed", false
	case at.clientRST != 0:
		return report.Timeout, at.clientRST, "client-rst", false
	case at.nextAction != 0:
		return report.Timeout, at.nextAction, "next-action", true
	case at.newISN != 0:
		return report.Timeout, at.newISN, "new-attempt", true
	case end >= at.lastSyn+at.retransmitGap():
		return report.Timeout, at.lastSyn + at.expectedInterval(), "retransmit-schedule", true
	}
	return report.Pending, end, "window-end", false
}

func (a *Analyzer) finishFlow(f *flow, now int64) {
	a.finishAttempt(f.att, now)
}

// finishAttempt turns an attempt into a report record. now is the time up
// to which the capture has been seen.
func (a *Analyzer) finishAttempt(at *attempt, now int64) {
	out, end, basis, inferred := a.resolve(at, now)
	if end < at.start {
		end = at.start // an answer captured before its SYN (reordering)
	}
	if a.cfg.From != 0 && end < a.cfg.From {
		a.stats.OutsideWindow++
		return
	}
	// Past the record limit a call like an earlier one is folded into it,
	// before the record is built: past the limit most calls are repeats,
	// and building costs more than the rest of the analysis.
	folding := len(a.conns) >= a.cfg.MaxRecords
	var key foldKey
	var other bool
	if folding {
		key, other = a.foldSlot(foldKey{dst: at.server.Addr().As16(), port: at.server.Port(), name: at.host, out: out})
		if i, ok := a.folded[key]; ok {
			f := &a.conns[i]
			f.Count++
			f.Attempts += at.syns
			f.SynAcks += at.synAcks
			f.RSTs += at.rsts
			f.Blocked += dur(end - at.start)
			a.stats.RecordsFolded++
			if a.cfg.SettleFolded {
				c := a.connRecord(at, out, end, basis, inferred)
				a.settledConnection(&c)
			}
			return
		}
	}
	c := a.connRecord(at, out, end, basis, inferred)
	streamed := false
	if other {
		if a.cfg.SettleFolded {
			a.settledConnection(&c) // with its own destination, not the fold's
			streamed = true
		}
		c.Host, c.NameSource, c.DstIP, c.DstPort = OtherDestinations, report.SourceNone, netip.Addr{}, 0
	}
	if folding {
		a.folded[key] = len(a.conns)
	}
	a.conns = append(a.conns, c)
	if !streamed {
		a.settledConnection(&a.conns[len(a.conns)-1])
	}
}

// connRecord builds the report record of a settled attempt.
func (a *Analyzer) connRecord(at *attempt, out report.Outcome, end int64, basis string, inferred bool) report.Connection {
	c := report.Connection{
		Host:       at.host,
		NameSource: at.nameSource,
		SrcIP:      at.client.Addr().Unmap(),
		SrcPort:    at.client.Port(),
		DstIP:      at.server.Addr().Unmap(),
		DstPort:    at.server.Port(),
		Proto:      "tcp",
		Start:      time.Unix(0, at.start).UTC(),
		Attempts:   at.syns,
		SynAcks:    at.synAcks,
		RSTs:       at.rsts,
		Outcome:    out,
		End:        time.Unix(0, end).UTC(),
		Blocked:    dur(end - at.start),
		Inferred:   inferred,
		EndBasis:   basis,
		ICMP:       at.icmp,
		// A host talking to itself (loopback, or its own address) is a
		// local service, not egress.
		Loopback: at.client.Addr().IsLoopback() || at.server.Addr().IsLoopback() || at.client.Addr() == at.server.Addr(),
		Count:    1,
	}
	if c.NameSource == "" {
		c.NameSource = report.SourceNone
	}
	n := at.syns
	if n > maxSynTimes {
		n = maxSynTimes
	}
	c.SynTimes = make([]report.Duration, n)
	for i := 0; i < n; i++ {
		c.SynTimes[i] = dur(at.synTimes[i] - at.start)
	}
	if at.proc != nil {
		pid, comm := at.proc.PID, at.proc.Comm
		c.PID, c.Comm = &pid, &comm
	}
	return c
}

// foldSlot says which record a call past the record limit joins: the one of
// its own fold key, or, when the fold table is full and the key is new, the
// per-outcome "other destinations" record (counted in records_dropped).
// Memory so stays bounded however long the capture.
func (a *Analyzer) foldSlot(k foldKey) (slot foldKey, other bool) {
	if _, ok := a.folded[k]; ok || len(a.folded) < 2*a.cfg.MaxRecords {
		return k, false
	}
	a.stats.RecordsDropped++
	return foldKey{lookup: k.lookup, name: OtherDestinations, out: k.out}, true
}

// OtherDestinations names the records that gather, per outcome, the calls
// beyond every bound (stats.records_dropped counts them).
const OtherDestinations = "(other destinations)"

func pidOf(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// dur is a span of ns nanoseconds at the report's resolution.
func dur(ns int64) report.Duration { return report.Micro(time.Duration(ns)) }
