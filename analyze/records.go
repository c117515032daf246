package analyze

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/egress-dev/egress/event"
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
// to which the capture has been seen. Everything that decides where the call
// belongs (inside the window, its outcome, its record) is decided here,
// before it joins a record (fold.go).
func (a *Analyzer) finishAttempt(at *attempt, now int64) {
	if !a.startsInWindow(at.start) {
		a.stats.OutsideWindow++
		return
	}
	out, end, basis, inferred := a.resolve(at, now)
	a.renameAttempt(at)
	if end < at.start {
		end = at.start // an answer captured before its SYN (reordering)
	}
	blocked := a.blockedInWindow(at.start, end)
	// A host talking to itself (loopback, or its own address) is a local
	// service, not egress.
	loop := at.client.Addr().IsLoopback() || at.server.Addr().IsLoopback() || at.client.Addr() == at.server.Addr()
	fail := out.Failed()
	pl := a.place(len(a.conns), foldKey{client: at.client.Addr().As16(), dst: at.server.Addr().As16(),
		port: at.server.Port(), name: nameKey(at.host), out: out}, fail, at.client.Addr(), at.server.Addr())
	if pl.inbound {
		a.stats.InboundAttempts++
		return
	}
	if pl.index >= 0 {
		if !loop {
			a.noteFolded(at.client.Addr(), at.server.Addr(), at.start, end, fail)
		}
		// Folded: counted into the earlier record. Past the record limit
		// most calls are repeats, and building a record costs more than
		// the rest of the analysis.
		f := &a.conns[pl.index]
		if f.Count == 1 {
			f.BlockedSumMS = f.BlockedMS
			if f.FoldedBy == "" {
				f.FoldedBy = report.FoldClient
			}
		}
		f.Count++
		f.Attempts += at.syns
		f.SynAcks += at.synAcks
		f.RSTs += at.rsts
		f.BlockedMS = max(f.BlockedMS, blocked)
		f.BlockedSumMS += blocked
		f.Inferred = f.Inferred || inferred
		a.stats.RecordsFolded++
		if pl.key.tier == tierOutcome {
			a.stats.RecordsDropped++
		}
		if a.cfg.SettleFolded {
			c := a.connRecord(at, out, end, basis, inferred, blocked, loop)
			a.settledConnection(&c)
		}
		return
	}
	c := a.connRecord(at, out, end, basis, inferred, blocked, loop)
	if pl.tier != tierOwn {
		c.FoldedBy = pl.tier.foldedBy()
	}
	streamed := false
	if pl.tier == tierOutcome {
		if a.cfg.SettleFolded {
			own := c
			own.FoldedBy = ""
			a.settledConnection(&own) // with its own destination, not the fold's
			streamed = true
		}
		c.Host, c.NameSource, c.DstIP, c.DstPort = OtherDestinations, report.SourceNone, netip.Addr{}, 0
		a.stats.RecordsDropped++
	}
	a.register(pl, len(a.conns), fail)
	a.conns = append(a.conns, c)
	a.connSp = append(a.connSp, spanOf(out.Failed() && !c.Loopback && pl.tier != tierOutcome, at.start, end, at.busyAt))
	if !streamed {
		a.settledConnection(&a.conns[len(a.conns)-1])
	}
}

// connRecord builds the report record of a settled attempt.
func (a *Analyzer) connRecord(at *attempt, out report.Outcome, end int64, basis string, inferred bool, blocked float64, loop bool) report.Connection {
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
		BlockedMS:  blocked,
		Inferred:   inferred,
		EndBasis:   basis,
		ICMP:       at.icmp,
		Loopback:   loop,
		Count:      1,
	}
	if c.NameSource == "" {
		c.NameSource = report.SourceNone
	}
	n := at.syns
	if n > maxSynTimes {
		n = maxSynTimes
	}
	c.SynTimesMS = make([]float64, n)
	for i := 0; i < n; i++ {
		c.SynTimesMS[i] = ms(at.synTimes[i] - at.start)
	}
	if at.proc != nil {
		pid, comm := at.proc.PID, at.proc.Comm
		c.PID, c.Comm = &pid, &comm
	}
	c.Stack, c.CalledFrom = a.stack(at.stack)
	return c
}

// startsInWindow says whether a call that started at t is inside the
// window: calls are selected by their start.
func (a *Analyzer) startsInWindow(t int64) bool {
	return (a.cfg.From == 0 || t >= a.cfg.From) && (a.cfg.To == 0 || t <= a.cfg.To)
}

// blockedInWindow is the part of a wait from start to end that lies inside
// the window, in milliseconds.
func (a *Analyzer) blockedInWindow(start, end int64) float64 {
	if a.cfg.To != 0 && end > a.cfg.To {
		end = a.cfg.To
	}
	if a.cfg.From != 0 && start < a.cfg.From {
		start = a.cfg.From
	}
	if end < start {
		return 0
	}
	return ms(end - start)
}

// OtherDestinations names the catch-all records that gather, per outcome,
// the calls beyond every bound (stats.records_dropped counts them; their
// destinations field says how many destinations they stand for).
const OtherDestinations = "(other destinations)"

func pidOf(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func ms(ns int64) float64 {
	return float64(ns/1000) / 1000
}

// stack turns a kernel stack into the report's frames and names its call
// site (report.CallSite, with Config.AppFrames).
func (a *Analyzer) stack(fs []event.Frame) ([]report.Frame, string) {
	if len(fs) == 0 {
		return nil, ""
	}
	out := make([]report.Frame, len(fs))
	for i, f := range fs {
		out[i] = report.Frame{Function: f.Function, File: f.File, Line: f.Line, Module: f.Module, Offset: f.Offset}
	}
	site, ok := report.CallSite(out, a.cfg.AppFrames)
	if !ok {
		return out, ""
	}
	return out, report.CallSiteText(site)
}
