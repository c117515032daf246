//go:build linux

package cgrouprun

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// TestMain lets the test binary be its own launcher and supervisor, as
// egress is (cmd/egress/main.go calls MaybeLaunch first).
func TestMain(m *testing.M) {
	MaybeLaunch()
	os.Exit(m.Run())
}

func TestParseKeep(t *testing.T) {
	got, err := ParseKeep([]string{"net_raw", "CAP_SYS_PTRACE", " NET_RAW ", ""})
	if err != nil || strings.Join(got, ",") != "NET_RAW,SYS_PTRACE" {
		t.Errorf("ParseKeep = %q, %v; want NET_RAW,SYS_PTRACE", got, err)
	}
	if _, err := ParseKeep([]string{"CHOWN"}); err == nil {
		t.Errorf("ParseKeep accepted a capability egress never drops")
	}
	c := Confinement{Keep: []string{"NET_RAW"}}
	if d := c.Dropped(); len(d) != len(DefaultDrop)-1 || d[0] != "NET_ADMIN" {
		t.Errorf("Dropped() = %q, want DefaultDrop without NET_RAW", d)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/sys/fs/cgroup`: "/sys/fs/cgroup", `/tmp/a\040b`: "/tmp/a b", `/x\134y`: `/x\y`, `/bad\04`: `/bad\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPrivilegedLaunch: the launched command is pid 2 of its own pid
// namespace, sees its cgroup as the root of its cgroup namespace (and of
// the cgroup2 mount), has no_new_privs and lacks the dropped capabilities
// in every set, except those kept.
func TestPrivilegedLaunch(t *testing.T) {
	testnet.RequirePrivileged(t, "sh", "cat")
	for _, keep := range [][]string{nil, {"NET_RAW"}} {
		g, err := New("egress-launchtest")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Remove() })
		mount, _ := Mount()
		cmd, err := g.Launch(context.Background(), Confinement{Keep: keep}, "sh", "-c",
			"echo ppid $PPID; cat /proc/self/status /proc/self/cgroup; cat "+mount+"/cgroup.procs | wc -l")
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("keep %v: %v\n%s", keep, err, out)
		}
		s := string(out)
		for _, want := range []string{"ppid 1\n", "NoNewPrivs:\t1\n", "\n0::/\n"} {
			if !strings.Contains(s, want) {
				t.Errorf("keep %v: no %q in\n%s", keep, want, s)
			}
		}
		for _, set := range []string{"CapBnd", "CapEff", "CapPrm"} {
			m := regexp.MustCompile(set + `:\s+([0-9a-f]+)`).FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("no %s in\n%s", set, s)
			}
			v, _ := strconv.ParseUint(m[1], 16, 64)
			if got, want := v&(1<<13) != 0, len(keep) > 0; got != want {
				t.Errorf("keep %v: NET_RAW in %s is %v, want %v", keep, set, got, want)
			}
			if v&(1<<21) != 0 || v&(1<<39) != 0 {
				t.Errorf("keep %v: SYS_ADMIN or BPF in %s (%s)", keep, set, m[1])
			}
		}
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	}
}

// TestPrivilegedSupervisor: when egress goes away without saying done (its
// end of the pipe closes), the supervisor kills what the command left,
// child cgroups included, and removes the tree; after Done it leaves all
// alone.
func TestPrivilegedSupervisor(t *testing.T) {
	testnet.RequirePrivileged(t, "sh", "sleep")
	g, err := New("egress-suptest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Remove() })
	cmd := g.Command(context.Background(), "sh", "-c", "mkdir "+g.Path+"/child && echo $$ > "+g.Path+"/child/cgroup.procs && exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	for i := 0; ; i++ {
		if data, _ := os.ReadFile(g.Path + "/child/cgroup.procs"); len(data) > 0 {
			break
		} else if i == 100 {
			t.Fatal("the command did not move into its child cgroup")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, err := g.Supervise(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.w.Close() // egress "died"
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("supervisor: %v", err)
	}
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("the cgroup %s is still there after the supervisor: %v", g.Path, err)
	}

	// Done: the supervisor leaves the (live) cgroup alone.
	g2, err := New("egress-suptest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g2.Remove() })
	s2, err := g2.Supervise(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Done(); err != nil {
		t.Errorf("Done: %v", err)
	}
	if _, err := os.Stat(g2.Path); err != nil {
		t.Errorf("after Done the cgroup is gone: %v", err)
	}
}
