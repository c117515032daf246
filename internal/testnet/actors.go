package testnet

import (
	"bytes"
	"os/exec"
	"sync"
	"testing"
)

// BuildActors builds the story's actors (dnsd, vendord, shopapp) into a
// temporary directory of t and returns it. Tests that run them inside
// namespaces need real binaries: `go run` would build inside the namespace.
func BuildActors(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("needs the go command to build the test servers: %v", err)
	}
	cmd := exec.Command(gobin, "build", "-o", dir+"/",
		"github.com/egress-dev/egress/internal/testnet/dnsd",
		"github.com/egress-dev/egress/internal/testnet/vendord",
		"github.com/egress-dev/egress/internal/testnet/shopapp")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building test servers: %v\n%s", err, out)
	}
	return dir
}

// SyncBuffer is a bytes.Buffer safe for the concurrent writes of several
// processes' output copiers (server logs in tests).
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
