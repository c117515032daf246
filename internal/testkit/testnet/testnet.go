package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PrivilegedEnv is the environment variable that says privileged tests must
// run: when it is "1", a test that cannot get privileges fails instead of
// skipping, so CI can never skip them silently.
const PrivilegedEnv = "EGRESS_PRIVILEGED_TESTS"

// RequirePrivileged skips t when the process is not root, or fails it when
// PrivilegedEnv is set, and checks the tools it needs are installed.
func RequirePrivileged(t testing.TB, tools ...string) {
	t.Helper()
	strict := os.Getenv(PrivilegedEnv) == "1"
	stop := t.Skipf
	if strict {
		stop = t.Fatalf
	}
	if os.Geteuid() != 0 {
		stop("needs root to create network namespaces (euid %d)", os.Geteuid())
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			stop("needs %s: %v", tool, err)
		}
	}
}

// seq makes namespace names unique within a process; the pid makes them
// unique between processes (parallel test binaries, recordings).
var seq atomic.Uint64

// Net is a set of namespaces and what was built in them.
type Net struct {
	prefix string

	mu     sync.Mutex // guards the fields below
	undo   []func() error
	closed bool
}

// New returns an empty Net whose namespaces are named prefix-<pid>-<n>-<name>.
func New(prefix string) *Net {
	return &Net{prefix: fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))}
}

// NewForTest calls RequirePrivileged and returns a Net closed by t.Cleanup;
// cleanup errors fail the test.
func NewForTest(t testing.TB, tools ...string) *Net {
	t.Helper()
	RequirePrivileged(t, tools...)
	n := New("egr-t")
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("cleaning up test network: %v", err)
		}
	})
	return n
}

func (n *Net) push(f func() error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.undo = append(n.undo, f)
}

// Close undoes everything in reverse order and returns every error met; it
// does not stop at the first one, so one stuck step cannot leak the rest.
// Calling it again does nothing.
func (n *Net) Close() error {
	n.mu.Lock()
	undo := n.undo
	n.undo = nil
	n.closed = true
	n.mu.Unlock()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		errs = append(errs, undo[i]())
	}
	return errors.Join(errs...)
}

// run runs a command and returns its output, with stderr in the error.
func run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("running %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Namespace is a network namespace made by a Net.
type Namespace struct {
	Name string // as ip-netns(8) knows it
	net  *Net
}

// Namespace creates a namespace named after name and brings its loopback up.
func (n *Net) Namespace(ctx context.Context, name string) (*Namespace, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, errors.New("creating namespace: net is closed")
	}
	ns := &Namespace{Name: n.prefix + "-" + name, net: n}
	if _, err := run(ctx, "", "ip", "netns", "add", ns.Name); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}
	n.push(func() error {
		// A fresh context: cleanup must run even when the test's is done.
		_, err := run(context.Background(), "", "ip", "netns", "del", ns.Name)
		return err
	})
	if err := ns.ip(ctx, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// Link joins a and b with a veth pair named aIf in a and bIf in b, both up.
// The pair is made inside the namespaces, never in the caller's, so names
// cannot clash with other runs; it goes away with its namespaces.
func (n *Net) Link(ctx context.Context, a *Namespace, aIf string, b *Namespace, bIf string) error {
	if _, err := run(ctx, "", "ip", "-n", a.Name, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name); err != nil {
		return fmt.Errorf("linking %s:%s to %s:%s: %w", a.Name, aIf, b.Name, bIf, err)
	}
	if err := a.ip(ctx, "link", "set", aIf, "up"); err != nil {
		return err
	}
	return b.ip(ctx, "link", "set", bIf, "up")
}

// Pair makes two namespaces joined by eth0 in each, with one address each:
// the app host and the peer it calls, as most privileged tests need.
func (n *Net) Pair(ctx context.Context, aName string, aAddr netip.Prefix, bName string, bAddr netip.Prefix) (a, b *Namespace, err error) {
	if a, err = n.Namespace(ctx, aName); err != nil {
		return nil, nil, err
	}
	if b, err = n.Namespace(ctx, bName); err != nil {
		return nil, nil, err
	}
	if err := n.Link(ctx, a, "eth0", b, "eth0"); err != nil {
		return nil, nil, err
	}
	if err := a.Addr(ctx, "eth0", aAddr); err != nil {
		return nil, nil, err
	}
	if err := b.Addr(ctx, "eth0", bAddr); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

func (ns *Namespace) ip(ctx context.Context, args ...string) error {
	if _, err := run(ctx, "", "ip", append([]string{"-n", ns.Name}, args...)...); err != nil {
		return fmt.Errorf("in %s: %w", ns.Name, err)
	}
	return nil
}

// Addr adds an address to an interface. IPv6 addresses skip duplicate
// address detection, which would otherwise hold them unusable for a second.
func (ns *Namespace) Addr(ctx context.Context, ifname string, p netip.Prefix) error {
	args := []string{"addr", "add", p.String(), "dev", ifname}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	return ns.ip(ctx, args...)
}

// Route adds a route to dst via a gateway; dst may be the zero Prefix for
// the default route of via's family.
func (ns *Namespace) Route(ctx context.Context, dst netip.Prefix, via netip.Addr) error {
	to := "default"
	if dst.IsValid() {
		to = dst.String()
	}
	args := []string{"route", "add", to, "via", via.String()}
	if via.Is6() {
		args = append([]string{"-6"}, args...)
	}
	return ns.ip(ctx, args...)
}

// Sysctl sets a sysctl inside the namespace (net.* keys are per namespace).
func (ns *Namespace) Sysctl(ctx context.Context, key, value string) error {
	if _, err := run(ctx, "", "ip", "netns", "exec", ns.Name, "sysctl", "-q", "-w", key+"="+value); err != nil {
		return fmt.Errorf("in %s: %w", ns.Name, err)
	}
	return nil
}

// Forwarding makes the namespace a router for IPv4 and IPv6.
func (ns *Namespace) Forwarding(ctx context.Context) error {
	if err := ns.Sysctl(ctx, "net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	return ns.Sysctl(ctx, "net.ipv6.conf.all.forwarding", "1")
}

// Nft loads an nftables ruleset (nft -f syntax) into the namespace. Rulesets
// live in the namespace and go away with it.
func (ns *Namespace) Nft(ctx context.Context, ruleset string) error {
	if _, err := run(ctx, ruleset, "ip", "netns", "exec", ns.Name, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("in %s: loading ruleset: %w", ns.Name, err)
	}
	return nil
}

// ResolvConf writes /etc/netns/<name>/resolv.conf, which `ip netns exec`
// bind-mounts over /etc/resolv.conf for processes started in the namespace,
// so they use nameserver instead of the machine's resolver. options is the
// resolv.conf options line, e.g. "timeout:2 attempts:1".
func (ns *Namespace) ResolvConf(nameserver netip.Addr, options string) error {
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing resolv.conf of %s: %w", ns.Name, err)
	}
	ns.net.push(func() error { return os.RemoveAll(dir) })
	conf := "nameserver " + nameserver.String() + "\n"
	if options != "" {
		conf += "options " + options + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("writing resolv.conf of %s: %w", ns.Name, err)
	}
	return nil
}

// Command returns a command that runs name inside the namespace.
func (ns *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its standard output.
func (ns *Namespace) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := run(ctx, "", "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("in %s: %w", ns.Name, err)
	}
	return out, nil
}

// Process is a long-running command started in a namespace.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Start starts a command inside the namespace with its output going to
// output (nil discards it). The Net stops it on Close, before deleting
// its namespace.
func (ns *Namespace) Start(name string, output io.Writer, args ...string) (*Process, error) {
	// Not CommandContext: the process lives until Stop or Close, not until
	// some caller's context ends.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("in %s: starting %s: %w", ns.Name, name, err)
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ns.net.push(func() error { p.Stop(); return nil })
	return p, nil
}

// Stop sends SIGTERM, waits up to 3 s, then kills the process. It returns
// once the process has exited; calling it again does nothing.
func (p *Process) Stop() {
	// `ip netns exec` execs the command, so the pid is the command's own.
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(3 * time.Second):
	}
	p.Cmd.Process.Kill()
	<-p.done
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; valid after Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// WaitListening waits, at most five seconds, until something in the
// namespace listens on port (network "udp" or "tcp"), on any address: a server
// started with Start is asynchronous, and a client that asks before it
// binds gets a refusal the test did not mean (a DNS query answered by an
// ICMP port unreachable is a failed lookup in the report).
func (ns *Namespace) WaitListening(ctx context.Context, network string, port uint16) error {
	flag := "-lnt"
	if network == "udp" {
		flag = "-lnu"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		out, err := ns.Run(ctx, "ss", "-H", flag, "sport", "=", fmt.Sprintf(":%d", port))
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nothing listens on %s port %d in %s after 5 s (ss: %v)", network, port, ns.Name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartListening starts a server with Start and waits until it listens on
// port (WaitListening); the process is stopped again when it does not.
func (ns *Namespace) StartListening(ctx context.Context, network string, port uint16, name string, output io.Writer, args ...string) (*Process, error) {
	p, err := ns.Start(name, output, args...)
	if err != nil {
		return nil, err
	}
	if err := ns.WaitListening(ctx, network, port); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	return p, nil
}
