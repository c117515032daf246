package testnet

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	leftV4  = netip.MustParsePrefix("198.18.0.2/24")
	rightV4 = netip.MustParsePrefix("198.18.0.1/24")
	leftV6  = netip.MustParsePrefix("2001:db8:1::2/64")
	rightV6 = netip.MustParsePrefix("2001:db8:1::1/64")
)

func TestPrivilegedTwoNamespaces(t *testing.T) {
	n := NewForTest(t, "curl")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	left, err := n.Namespace(ctx, "left")
	if err != nil {
		t.Fatal(err)
	}
	right, err := n.Namespace(ctx, "right")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Link(ctx, left, "eth0", right, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		ns *Namespace
		p  netip.Prefix
	}{{left, leftV4}, {left, leftV6}, {right, rightV4}, {right, rightV6}} {
		if err := a.ns.Addr(ctx, "eth0", a.p); err != nil {
			t.Fatal(err)
		}
	}

	// HTTP across the link over IPv4 and IPv6 to a server started with
	// Start; a closed port answers with a RST (curl exit 7).
	bin := BuildActors(t)
	var logs SyncBuffer
	srv, err := right.StartListening(ctx, "tcp", 80, filepath.Join(bin, "vendord"), &logs, "-http", ":80", "-https", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"198.18.0.1", "[2001:db8:1::1]"} {
		var out []byte
		for i := 0; i < 50; i++ { // the server starts asynchronously
			if out, err = left.Run(ctx, "curl", "-s", "-S", "--max-time", "2", "http://"+dst+"/check"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || string(out) != "latest=4.2.1\n" {
			t.Errorf("GET http://%s/check = %q, %v; want latest=4.2.1", dst, out, err)
		}
		err := left.Command(ctx, "curl", "-s", "--connect-timeout", "2", "http://"+dst+":9/").Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Errorf("curl to closed port on %s: %v, want exit 7 (connection refused)", dst, err)
		}
	}

	// By now the server has answered, so ip has exec-ed it.
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(srv.Cmd.Process.Pid), "comm"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(comm)); got != "vendord" {
		t.Errorf("started pid runs %q, want vendord itself, not ip", got)
	}
	// The namespaces exist now and are gone after Close.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	default:
		t.Error("process still running after Close")
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*Namespace{left, right} {
		if strings.Contains(string(out), ns.Name) {
			t.Errorf("namespace %s left behind:\n%s", ns.Name, out)
		}
	}
}
