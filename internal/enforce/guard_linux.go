package enforce

import (
	"context"
	"net/netip"
	"sync"

	"github.com/egress-dev/egress/capture"
	"github.com/egress-dev/egress/event"
	"github.com/egress-dev/egress/internal/enforce/block"
	"github.com/egress-dev/egress/internal/enforce/dnsproxy"
	"github.com/egress-dev/egress/rules"
)

// GuardOptions says what to put around one cgroup.
type GuardOptions struct {
	Cgroup   string // the cgroup v2 directory
	CgroupID uint64
	// Upstreams are the resolvers the DNS proxy forwards to; with none,
	// DNS is not proxied (and --block cannot name what it allows).
	Upstreams []netip.AddrPort
	Policy    *rules.Policy // nil: no --rules
	Block     bool          // refuse what Policy does not allow
	// Owner names the process of a relayed query by its client socket.
	Owner func(client netip.AddrPort, tcp bool) *event.Process
}

// Guard is what egress run puts around the command's cgroup: the DNS proxy
// and the cgroup programs (DNS steering to the proxy, --block's refusals,
// and the calls the tracepoints do not see: UDP, child cgroups, ICMP and
// raw sockets). They are set up together because each needs the other:
// the programs steer DNS to the proxy's port, and the proxy lets an
// allowed name's addresses into the programs' allow map.
type Guard struct {
	Proxy   *dnsproxy.Proxy // nil without upstreams
	Blocker *block.Blocker
	sources []capture.Source
	stop    context.CancelFunc
	bg      sync.WaitGroup
}

// StartGuard opens the proxy (serving until Close, not until ctx ends: the
// pipeline drains after the command) and attaches the programs.
func StartGuard(ctx context.Context, o GuardOptions) (*Guard, error) {
	g := &Guard{}
	dp := &DNSPolicy{Policy: o.Policy, Enforce: o.Block}
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	g.stop = stop
	if len(o.Upstreams) > 0 {
		exchanges := dnsproxy.NewExchanges(4096)
		exchanges.Owner = o.Owner
		proxy, err := dnsproxy.Listen(dnsproxy.Config{Upstreams: o.Upstreams, Policy: dp, Observe: exchanges.Observe})
		if err != nil {
			stop()
			return nil, err
		}
		g.Proxy = proxy
		g.sources = append(g.sources, exchanges)
	}
	loopback := true
	if o.Policy != nil {
		loopback, _ = o.Policy.Defaults()
	}
	bopts := block.Options{Cgroup: o.Cgroup, CgroupID: o.CgroupID, Enforce: o.Block, AllowLoopback: loopback}
	if g.Proxy != nil {
		bopts.ProxyPort, bopts.Proxy6 = g.Proxy.Port(), g.Proxy.IPv6()
	}
	blocker, err := block.Open(bopts)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.Blocker = blocker
	dp.Blocker = blocker // before the proxy serves
	if o.Block {
		if err := AllowAddrGrants(blocker, o.Policy); err != nil {
			g.Close()
			return nil, err
		}
	}
	if g.Proxy != nil {
		g.bg.Go(func() { g.Proxy.Serve(bgCtx) })
	}
	g.sources = append(g.sources, blocker.Source())
	return g, nil
}

// Sources are the guard's observations: the relayed DNS exchanges and the
// programs' refusals and catch-all reports.
func (g *Guard) Sources() []capture.Source { return g.sources }

// Steering says where DNS was steered (none without a proxy).
func (g *Guard) Steering() Steering {
	if g.Proxy == nil {
		return Steering{}
	}
	return Steering{Port: g.Proxy.Port()}
}

// Seen counts how often the kernel saw a refused call (pipeline.Config.Seen).
func (g *Guard) Seen(b *event.Blocked) uint64 { return g.Blocker.Seen(block.FromEvent(b)) }

// Close detaches the programs, then stops the proxy and waits for it.
func (g *Guard) Close() {
	if g.Blocker != nil {
		g.Blocker.Close()
	}
	g.stop()
	g.bg.Wait()
}
