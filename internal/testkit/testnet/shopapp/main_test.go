package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// durations hides the measured times so outputs compare exactly.
var durations = regexp.MustCompile(`\(\d+(\.\d+)?m?s\)|after \d+(\.\d+)?m?s`)

func TestLogin(t *testing.T) {
	vendor := http.NewServeMux()
	vendor.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "latest=4.2.1") })
	vendor.HandleFunc("/v1/license", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"valid":true}`) })
	plain := httptest.NewServer(vendor)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(vendor)
	t.Cleanup(secure.Close)
	closed := closedPort(t)

	tests := []struct {
		name string
		cfg  config
		want string
	}{{
		name: "both succeed",
		cfg:  config{checkURL: plain.URL + "/check", licenseURL: secure.URL + "/v1/license"},
		want: "check via go: 200 \"latest=4.2.1\" ()\nlicense via go: 200 \"{\\\"valid\\\":true}\" ()\nlogin ok after\n",
	}, {
		name: "refused",
		cfg:  config{checkURL: "http://" + closed + "/check", licenseURL: secure.URL + "/v1/license"},
		want: "check via go: error: Get \"http://" + closed + "/check\": connecting to 127.0.0.1 (" + closed +
			"): dial tcp " + closed + ": connect: connection refused ()\nlicense via go: 200 \"{\\\"valid\\\":true}\" ()\nlogin ok after\n",
	}, {
		name: "license via curl child",
		cfg:  config{checkURL: plain.URL + "/check", licenseURL: secure.URL + "/v1/license", child: "license", curl: "curl"},
		want: "check via go: 200 \"latest=4.2.1\" ()\nlicense via curl: curl 200 ()\nlogin ok after\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.child != "" {
				if _, err := exec.LookPath("curl"); err != nil {
					t.Skip("curl not installed")
				}
			}
			tt.cfg.connectTimeout = 2 * time.Second
			tt.cfg.requestTimeout = 5 * time.Second
			shop := httptest.NewServer(newShop(tt.cfg, slog.New(slog.DiscardHandler)))
			t.Cleanup(shop.Close)
			resp, err := http.Post(shop.URL+"/login", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := durations.ReplaceAllStringFunc(string(body), func(s string) string {
				if s[0] == '(' {
					return "()"
				}
				return "after"
			})
			if diff := cmp.Diff(tt.want, got); diff != "" || resp.StatusCode != 200 {
				t.Errorf("login = %d, body mismatch (-want +got):\n%s", resp.StatusCode, diff)
			}
		})
	}
}
