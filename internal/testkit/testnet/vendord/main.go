package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("vendord", flag.ContinueOnError)
	fs.SetOutput(stderr)
	httpAddr := fs.String("http", ":80", "HTTP listen address (empty: none)")
	httpsAddr := fs.String("https", ":443", "HTTPS listen address (empty: none)")
	names := fs.String("names", "updates.vendor.test,api.vendor.test,edge.vendor.test", "comma-separated DNS names of the certificate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, log, *httpAddr, *httpsAddr, strings.Split(*names, ",")); err != nil {
		log.Error("serving", "err", err)
		return 1
	}
	return 0
}

// handler answers the vendor's endpoints.
func handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		log.Info("update check", "from", r.RemoteAddr, "host", r.Host, "tls", r.TLS != nil)
		fmt.Fprintln(w, "latest=4.2.1")
	})
	mux.HandleFunc("GET /v1/license", func(w http.ResponseWriter, r *http.Request) {
		log.Info("license check", "from", r.RemoteAddr, "host", r.Host, "tls", r.TLS != nil)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"valid":true,"seats":5}`)
	})
	return mux
}

func serve(ctx context.Context, log *slog.Logger, httpAddr, httpsAddr string, names []string) error {
	h := handler(log)
	var servers []*http.Server
	var lns []net.Listener
	var lc net.ListenConfig
	if httpAddr != "" {
		ln, err := lc.Listen(ctx, "tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", httpAddr, err)
		}
		lns = append(lns, ln)
		servers = append(servers, &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second})
	}
	if httpsAddr != "" {
		cert, err := selfSigned(names, time.Now())
		if err != nil {
			return err
		}
		ln, err := lc.Listen(ctx, "tcp", httpsAddr)
		if err != nil {
			return fmt.Errorf("listening on %s: %w", httpsAddr, err)
		}
		lns = append(lns, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
		servers = append(servers, &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second})
	}
	if len(servers) == 0 {
		return errors.New("nothing to serve: -http and -https are both empty")
	}
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		log.Info("serving", "addr", lns[i].Addr())
		wg.Go(func() {
			if err := s.Serve(lns[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s: %w", lns[i].Addr(), err)
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	wg.Wait()
	return err
}

// selfSigned makes an ECDSA P-256 certificate for names, valid a day around now.
func selfSigned(names []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Vendor (test)"}},
		DNSNames:     names,
		NotBefore:    now.Add(-12 * time.Hour),
		NotAfter:     now.Add(12 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
