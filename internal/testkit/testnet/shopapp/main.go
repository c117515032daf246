// The pure-Go resolver reads resolv.conf itself (timeout, attempts), which is
// what the recorded captures rely on; cgo would hand lookups to glibc.
//go:debug netdns=go

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// config is what the flags set.
type config struct {
	checkURL, licenseURL string
	connectTimeout       time.Duration
	requestTimeout       time.Duration
	child                string // "", "check" or "license"
	curl                 string
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("shopapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "HTTP listen address")
	var c config
	fs.StringVar(&c.checkURL, "check-url", "http://updates.vendor.test/check", "vendor update check URL")
	fs.StringVar(&c.licenseURL, "license-url", "https://api.vendor.test/v1/license", "vendor license check URL")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 3*time.Second, "connect timeout of each vendor call")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 15*time.Second, "bound on each whole vendor call")
	fs.StringVar(&c.child, "child", "", `run one call as a curl child process: "check" or "license"`)
	fs.StringVar(&c.curl, "curl", "curl", "curl binary used by -child")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.child != "" && c.child != "check" && c.child != "license" {
		fmt.Fprintf(stderr, "-child: want \"check\" or \"license\", got %q\n", c.child)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		log.Error("listening", "addr", *listen, "err", err)
		return 1
	}
	srv := &http.Server{Handler: newShop(c, log), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving", "addr", ln.Addr(), "connect_timeout", c.connectTimeout, "child", c.child)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Error("serving", "err", err)
		return 1
	}
	return 0
}

// shop serves the web shop's pages.
type shop struct {
	cfg    config
	log    *slog.Logger
	client *http.Client
}

func newShop(c config, log *slog.Logger) http.Handler {
	s := &shop{cfg: c, log: log}
	resolver := &net.Resolver{PreferGo: true}
	s.client = &http.Client{
		Timeout: c.requestTimeout,
		Transport: &http.Transport{
			// Never a proxy from the environment: the calls must go where the story says.
			Proxy:       nil,
			DialContext: (&dialer{resolver: resolver, timeout: c.connectTimeout}).dial,
			// A fresh connection per login, so every login shows its own SYNs.
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", s.login)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "web shop: POST /login to log in")
	})
	return mux
}

func (s *shop) login(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var b strings.Builder
	for _, call := range []struct{ name, url string }{
		{"check", s.cfg.checkURL},
		{"license", s.cfg.licenseURL},
	} {
		t0 := time.Now()
		via := "go"
		var result string
		if s.cfg.child == call.name {
			via = "curl"
			result = s.viaCurl(r.Context(), call.url)
		} else {
			result = s.viaGo(r.Context(), call.url)
		}
		d := time.Since(t0).Round(time.Millisecond)
		s.log.Info("vendor call", "call", call.name, "via", via, "url", call.url, "took", d, "result", result)
		fmt.Fprintf(&b, "%s via %s: %s (%s)\n", call.name, via, result, d)
	}
	fmt.Fprintf(&b, "login ok after %s\n", time.Since(start).Round(time.Millisecond))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, b.String())
}

// viaGo makes the call in this process and describes the outcome.
func (s *shop) viaGo(ctx context.Context, u string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "error: reading body: " + err.Error()
	}
	return fmt.Sprintf("%d %q", resp.StatusCode, strings.TrimSpace(string(body)))
}

// viaCurl makes the call from a child process, the way apps shell out.
func (s *shop) viaCurl(ctx context.Context, u string) string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout)
	defer cancel()
	secs := strconv.FormatFloat(s.cfg.connectTimeout.Seconds(), 'f', -1, 64)
	// Arguments are passed as $0..$2, never spliced into the script; exec
	// makes the child that connects a curl process forked by this one.
	script := `exec "$0" -s -S -k -o /dev/null -w '%{http_code}' --connect-timeout "$1" "$2"`
	cmd := exec.CommandContext(ctx, "sh", "-c", script, s.cfg.curl, secs, u)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("error: curl: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return "curl " + strings.TrimSpace(string(out))
}

// dialer resolves with the Go resolver, then connects to each address in
// turn, each attempt bounded by its own connect timeout (as most HTTP client
// libraries do; net.Dialer.Timeout would also count the lookup).
type dialer struct {
	resolver *net.Resolver
	timeout  time.Duration
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("splitting %q: %w", addr, err)
	}
	ips, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("parsing port %q: %w", port, err)
	}
	var lastErr error
	nd := net.Dialer{Timeout: d.timeout}
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(p))
		c, err := nd.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		lastErr = fmt.Errorf("connecting to %s (%s): %w", host, ap, err)
	}
	return nil, lastErr
}
