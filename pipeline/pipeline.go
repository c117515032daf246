package pipeline

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"time"

	"github.com/egress-dev/egress/analyze"
	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/capture/comment"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/enforce"
	"github.com/egress-dev/egress/report"
	"github.com/egress-dev/egress/rules"
)

// Config says what one run of the pipeline reads and how it ends.
type Config struct {
	// Analyze configures the analyzer (local addresses, the window's start;
	// a replay's --from/--to).
	Analyze analyze.Config
	// Sources are read together. A single source that is not Live (a
	// capture file) is read on the caller's goroutine, in its own order,
	// to its end; Live sources run until the window has closed and been
	// drained, and their observations are merged in time order.
	Sources []capture.Source
	Live    bool
	// Window, for live sources, is closed when the window closes (a
	// trigger's end, a duration, Ctrl-C, the end of egress run's command).
	Window <-chan struct{}
	// EndAtClose tells the analyzer the window closed when Window did
	// (watch); otherwise the window ends at the last observation (run).
	EndAtClose bool
	// Tee, when set, receives everything the sources saw, in the order
	// the analyzer saw it; it is closed with the window's edges.
	Tee Tee
	// Policy and Catalog, when set, judge and label the calls.
	Policy  *rules.Policy
	Catalog *rules.Catalog
	// Judge, when set, says what fails the check (report.Judge sets the
	// verdicts every output reads; Result.Failing lists what failed).
	Judge *report.Criteria
	// Stream, when set, is handed each settled call as soon as it is final
	// (--format jsonl); the report still has them all at the end.
	Stream Stream
	// Refusals says a source reports refused calls (event.Blocked): the
	// stream then holds back failed connects until the refusals are in.
	Refusals bool
	// Progress, when set, is given the analyzer's counters so far about
	// every ReorderHold/2 while a live window is open (the agent's health
	// metrics: tables evicted, records folded), on the pipeline's goroutine.
	Progress func(report.Stats)
	// Seen, when set, says how many times the kernel saw a reported call
	// (internal/enforce/block's Blocker.Seen); Steering is where run's DNS proxy
	// listens, so connections steered to it show the server the app asked
	// for. Both are live knowledge: the tee records Steering, not Seen.
	Seen     enforce.Counter
	Steering enforce.Steering
	// LookupsAreCalls judges lookups as calls (egress run): with a
	// policy, a lookup of a name no host entry allows is unexpected. The
	// tee records it, so a replay judges the same way.
	LookupsAreCalls bool
	// Finish, when set, adds what only the command knows to the report
	// (egress run: its confinement, the proxy's counters), before the
	// refused calls are merged. It is live knowledge the tee does not keep.
	Finish func(*report.Report)
	// ParentOf, when set, gives the parent of a process forked while
	// watched (capture/sched's Tracer.Parent), for processes whose parent
	// /proc could not give: a short-lived resolver's tree. 0: unknown.
	ParentOf func(pid int) int
	// Source and Backend are written into the report.
	Source, Backend string
	Hold, Drain     time.Duration // defaults: ReorderHold, DrainAfter
	// now is the clock of live windows (tests set it).
	now func() int64
}

// Tee is where a copy of everything seen is written: a pcapng.Writer.
type Tee interface {
	WriteFrame(t int64, frame []byte, wireLen int, proc *event.Process) error
	WriteSock(*event.Sock) error
	WriteDNS(*event.DNS) error
	WriteBlocked(*event.Blocked) error
	WriteActivity(*event.Activity) error
	Close(comment.WatchInfo) error
}

// ReorderHold is how long live observations wait to be put in time order
// before they are analyzed: kernel socket events, captured packets and
// the proxy's messages come through different queues, and a DNS answer
// must reach the analyzer before the connect() it names, as it happened.
const ReorderHold = 100 * time.Millisecond

// DrainAfter is how long live sources are still read once the window has
// closed: events timestamped inside the window may still sit in a ring
// buffer or a socket.
const DrainAfter = 200 * time.Millisecond

// Result is what a run of the pipeline found.
type Result struct {
	Report *report.Report
	// Failing are the destinations that fail the check (Config.Judge);
	// Unexpected counts the destinations the policy does not allow (and
	// the names --block refused).
	Failing    []*report.Destination
	Unexpected int
	// SourceErr is the first error a source stopped with (context.Canceled
	// when a replay was interrupted): the report covers what came before.
	SourceErr error
	// TeeErr is the first error writing the tee; StreamErr the first
	// error writing the stream.
	TeeErr, StreamErr error
	// WindowErr says why the window asked for (a capture's --from/--to)
	// cannot be reported on; the report is still made.
	WindowErr error
	// From and To are the window's edges as the pipeline saw them (Unix ns;
	// To is 0 when the window ended at the last observation).
	From, To int64
}

// Run reads the sources to the end of the window and returns the annotated
// report. It returns once every source has returned.
func Run(ctx context.Context, cfg Config) *Result {
	if cfg.Hold <= 0 {
		cfg.Hold = ReorderHold
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DrainAfter
	}
	if cfg.now == nil {
		cfg.now = func() int64 { return time.Now().UnixNano() }
	}
	st := &stage{tee: cfg.Tee, live: cfg.Live, parentOf: cfg.ParentOf}
	var stream *streamer
	if cfg.Stream != nil {
		stream = &streamer{out: cfg.Stream, pol: cfg.Policy, cat: cfg.Catalog, crit: cfg.Judge, blocked: &st.blocked,
			refusals: cfg.Refusals, holdLookups: cfg.LookupsAreCalls && cfg.Policy != nil}
		cfg.Analyze.Settled = stream
	}
	st.an = analyze.New(cfg.Analyze)
	res := &Result{From: cfg.Analyze.From}
	if cfg.Live {
		st.endAtClose = cfg.EndAtClose
		res.SourceErr = runLive(ctx, &cfg, st)
		res.To = st.to
		if !cfg.EndAtClose {
			res.To = 0
		}
	} else {
		for _, src := range cfg.Sources {
			if err := src.Run(ctx, capture.SinkFunc(st.observe)); err != nil && res.SourceErr == nil {
				res.SourceErr = err
			}
		}
		res.WindowErr = st.an.WindowError()
	}
	var stats event.Stats
	for _, src := range cfg.Sources {
		s := src.Stats()
		stats.Packets += s.Packets
		stats.Bytes += s.Bytes
		stats.Undecodable += s.Undecodable
		stats.Truncated += s.Truncated
		stats.Lost += s.Lost
	}
	st.an.SourceStats(stats)
	r := st.an.Finish()
	r.Source, r.Backend = cfg.Source, cfg.Backend
	if res.SourceErr != nil && !(cfg.Live && errors.Is(res.SourceErr, context.Canceled)) {
		r.Errors = append(r.Errors, res.SourceErr.Error())
	}
	analyzed := len(r.Hints)
	if cfg.Finish != nil {
		cfg.Finish(r)
	}
	if cfg.Tee != nil {
		// The file says what the live run said beyond its records: the
		// hints its finish step added and every event lost (the proxy's
		// too), so that replaying it gives the same report.
		if st.teeErr == nil {
			var hints []comment.Hint
			for _, h := range r.Hints[analyzed:] {
				hints = append(hints, comment.Hint{Kind: h.Kind, Subject: h.Subject, Text: h.Text})
			}
			st.teeErr = cfg.Tee.Close(comment.WatchInfo{From: res.From, To: res.To, Lost: r.Stats.EventsLost,
				LocalAny: cfg.Analyze.LocalAny, ProxyPort: cfg.Steering.Port, LookupsAreCalls: cfg.LookupsAreCalls,
				Hints: hints})
		}
		if res.TeeErr = st.teeErr; res.TeeErr != nil {
			r.Errors = append(r.Errors, res.TeeErr.Error())
		}
	}
	// Lost events may hide calls, whichever source lost them (the
	// tracer's ring, AF_PACKET's drops, run's DNS proxy): the headline
	// says so first.
	if lost := r.Stats.EventsLost; lost > 0 {
		r.Headline = report.IncompleteHeadline(lost, r.Headline)
	}
	st.blocked.merge(r, cfg.Seen, cfg.Steering)
	if cfg.Policy != nil || cfg.Catalog != nil {
		rules.Annotate(r, cfg.Policy, cfg.Catalog)
	}
	if cfg.LookupsAreCalls && cfg.Policy != nil {
		enforce.JudgeLookups(r, func(names ...string) bool { return enforce.HasHostGrant(cfg.Policy, names...) })
	}

	for _, d := range report.Destinations(r) {
		if d.Unexpected {
			res.Unexpected++
		}
	}
	res.Report = r
	if cfg.Judge != nil {
		res.Failing = report.Judge(r, *cfg.Judge)
	}
	if stream != nil {
		// What only the end knows, and the calls held for it.
		stream.finish(r)
		res.StreamErr = stream.err
	}
	return res
}

// runLive runs the sources on their own goroutines, merges what they emit
// in time order into st until the window has closed and been drained, and
// returns the first error a source stopped with.
func runLive(ctx context.Context, cfg *Config, st *stage) error {
	// The sources run until the window has closed and been drained, not
	// until ctx ends: Ctrl-C closes the window, then the report comes out.
	srcCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	obs := make(chan event.Observation, 4096)
	errs := make(chan error, len(cfg.Sources))
	for _, src := range cfg.Sources {
		go func() {
			errs <- src.Run(srcCtx, capture.SinkFunc(func(o event.Observation) { obs <- clone(o) }))
		}()
	}
	var (
		q        queue
		srcErr   error
		running  = len(cfg.Sources)
		window   = cfg.Window
		drainEnd <-chan time.Time
	)
	note := func(err error) {
		running--
		if err != nil && !errors.Is(err, context.Canceled) && srcErr == nil {
			srcErr = err
		}
	}
	tick := time.NewTicker(cfg.Hold / 2)
	defer tick.Stop()
loop:
	for running > 0 {
		select {
		case o := <-obs:
			q.push(o)
		case <-tick.C:
			st.release(&q, cfg.now()-int64(cfg.Hold))
			if cfg.Progress != nil {
				cfg.Progress(st.an.Stats())
			}
		case err := <-errs:
			// A source ended before the window did: report, keep the others.
			note(err)
			if running == 0 && st.to == 0 {
				st.to = cfg.now()
			}
		case <-window:
			window = nil
			st.to = cfg.now()
			drainEnd = time.After(cfg.Drain)
		case <-drainEnd:
			break loop
		}
	}
	stop()
	// Every source returns; what they had already emitted is delivered
	// too, so the tee holds it all.
	for running > 0 {
		select {
		case o := <-obs:
			q.push(o)
		case err := <-errs:
			note(err)
		}
	}
	for len(obs) > 0 {
		q.push(<-obs)
	}
	st.release(&q, math.MaxInt64)
	st.end()
	return srcErr
}

// stage takes the observations in order, on one goroutine: it gives the
// process to DNS traffic from the kernel's view of resolver sockets, writes
// the tee, feeds the analyzer and collects refused calls.
type stage struct {
	an       *analyze.Analyzer
	tee      Tee
	teeErr   error
	live     bool
	parentOf func(pid int) int

	// to is the live window's end (0 while open); once the observations
	// reach it, the analyzer is told (ended).
	to         int64
	endAtClose bool
	ended      bool

	// resolvers maps the local address of a process's connected DNS
	// socket to the process (from the kernel), bounded.
	resolvers map[netip.AddrPort]*event.Process
	blocked   blockedCalls
}

// maxResolverSockets bounds the resolver-socket map; it starts over when full.
const maxResolverSockets = 4096

func (s *stage) release(q *queue, until int64) {
	for {
		o, ok := q.pop(until)
		if !ok {
			return
		}
		s.observe(o)
	}
}

// end tells the analyzer where the window closed, if nothing after the
// edge has done so yet.
func (s *stage) end() {
	if s.endAtClose && s.to != 0 && !s.ended {
		s.ended = true
		s.an.End(s.to)
	}
}

func (s *stage) observe(o event.Observation) {
	if s.endAtClose && s.to != 0 && !s.ended && o.When() > s.to {
		s.end()
	}
	switch o := o.(type) {
	case *event.Packet:
		if o.Proc == nil && o.Proto == event.ProtoUDP && o.DstPort == 53 && s.resolvers != nil {
			// The kernel saw which process connected this resolver socket
			// (the socket may be gone before /proc could say).
			o.Proc = s.resolvers[netip.AddrPortFrom(o.Src, o.SrcPort)]
		}
		s.withParent(&o.Proc)
		if o.Frame != nil {
			s.write(func() error { return s.tee.WriteFrame(o.Time, o.Frame, o.WireLen, o.Proc) })
		}
		s.an.Packet(o)
	case *event.Sock:
		s.withParent(&o.Proc)
		if o.Kind == event.SockUDPConnect {
			// Not a call: it says whose DNS queries leave from that address.
			if s.resolvers == nil || len(s.resolvers) >= maxResolverSockets {
				s.resolvers = make(map[netip.AddrPort]*event.Process)
			}
			s.resolvers[o.Src] = o.Proc
			return
		}
		s.safeProc(&o.Proc)
		s.write(func() error { return s.tee.WriteSock(o) })
		s.an.Sock(o)
	case *event.DNS:
		if o.Proc == nil && !o.Response && s.resolvers != nil {
			o.Proc = s.resolvers[o.Client]
		}
		s.withParent(&o.Proc)
		s.safeProc(&o.Proc)
		s.write(func() error { return s.tee.WriteDNS(o) })
		s.blocked.dns(o)
		s.an.DNS(o)
	case *event.Blocked:
		s.safeProc(&o.Proc)
		s.write(func() error { return s.tee.WriteBlocked(o) })
		s.blocked.add(o)
	case *event.Undecoded:
		s.write(func() error { return s.tee.WriteFrame(o.Time, o.Frame, o.WireLen, nil) })
	case *event.Activity:
		s.write(func() error { return s.tee.WriteActivity(o) })
		s.an.Activity(o)
	}
}

// withParent gives a process its parent from the scheduler view where the
// source could not (the process had left /proc). Process values are shared
// and never changed once emitted, so it is a copy.
func (s *stage) withParent(p **event.Process) {
	if s.parentOf == nil || *p == nil || (*p).Parent != 0 {
		return
	}
	if parent := s.parentOf((*p).PID); parent > 0 {
		c := **p
		c.Parent = parent
		*p = &c
	}
}

// safeProc gives live observations the command name a pcapng file can
// hold, so a replay of the tee names processes exactly as the live run.
func (s *stage) safeProc(p **event.Process) {
	if !s.live || *p == nil {
		return
	}
	if comment.SafeComm((*p).Comm) != (*p).Comm {
		c := **p
		c.Comm = comment.SafeComm(c.Comm)
		*p = &c
	}
}

func (s *stage) write(fn func() error) {
	if s.tee == nil || s.teeErr != nil {
		return
	}
	s.teeErr = fn()
}
