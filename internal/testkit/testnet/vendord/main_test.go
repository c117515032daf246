package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServe(t *testing.T) {
	httpAddr, httpsAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, slog.New(slog.DiscardHandler), httpAddr, httpsAddr, []string{"api.vendor.test"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	var gotCert *x509.Certificate
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true,
			ServerName:         "api.vendor.test",
			VerifyConnection: func(cs tls.ConnectionState) error {
				gotCert = cs.PeerCertificates[0]
				return nil
			},
		},
	}}
	for _, tt := range []struct{ url, want string }{
		{"http://" + httpAddr + "/check", "latest=4.2.1\n"},
		{"https://" + httpsAddr + "/v1/license", "{\"valid\":true,\"seats\":5}\n"},
	} {
		var resp *http.Response
		var err error
		// The listeners come up asynchronously; retry briefly and boundedly.
		for i := 0; i < 50; i++ {
			if resp, err = client.Get(tt.url); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != tt.want {
			t.Errorf("GET %s = %d %q, want 200 %q", tt.url, resp.StatusCode, body, tt.want)
		}
	}
	if gotCert == nil || gotCert.VerifyHostname("api.vendor.test") != nil {
		t.Errorf("certificate does not name api.vendor.test: %v", gotCert)
	}
}
