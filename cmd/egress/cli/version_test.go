package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	for _, tt := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-11-30T12:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			"egress v1.4.0 revision 0123456789abcdef0123456789abcdef01234567 (2026-11-30T12:00:00Z), go1.26.0"},
		{"checkout with changes", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}},
			"egress (devel) revision abc with local changes, go1.26.0"},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.0"}, "egress (devel) revision unknown (built without VCS information), go1.26.0"},
	} {
		if got := versionText(tt.bi, true); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := versionText(nil, false); got != "egress (no build information)" {
		t.Errorf("no build info: %q", got)
	}
}

// TestVersion: both spellings print the same line, in-process (go test
// stamps no revision) and from a binary go build made in this checkout,
// which carries the checkout's revision.
func TestVersion(t *testing.T) {
	_, a, _ := runMain(t, nil, "--version")
	code, b, _ := runMain(t, nil, "version")
	if code != ExitOK || a != b || !strings.HasPrefix(a, "egress ") {
		t.Errorf("--version %q, version %q (exit %d): want the same egress line", a, b, code)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): go build stamps no revision", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	// go build finds git by a .git directory: a linked worktree (.git is a
	// file) gets no stamp. CI's fresh clone has the directory.
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		t.Skip("a git worktree (.git is a file): go build stamps no VCS revision here; a clone does")
	}
	// -buildvcs=true: the machine's GOFLAGS may turn stamping off.
	bin := t.TempDir()
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin+"/", "github.com/egress-dev/egress/cmd/egress")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(filepath.Join(bin, "egress"), arg).Output()
		if err != nil {
			t.Fatal(err)
		}
		if rev := strings.TrimSpace(string(head)); !strings.Contains(string(out), "revision "+rev) {
			t.Errorf("egress %s: %q, want revision %s", arg, out, rev)
		}
	}
}
