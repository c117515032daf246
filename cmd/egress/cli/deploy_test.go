//go:build linux

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/egress-dev/egress/internal/testkit/testnet"
)

// TestDeployFiles: the DaemonSet and the systemd unit start the agent with
// flags it has, and the DaemonSet asks for exactly the capabilities
// docs/agent.md explains, nothing privileged.
func TestDeployFiles(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Kind string
		Spec struct {
			Template struct {
				Spec struct {
					HostPID    bool `yaml:"hostPID"`
					Containers []struct {
						Args            []string
						SecurityContext struct {
							Privileged   bool
							Capabilities struct{ Drop, Add []string }
						} `yaml:"securityContext"`
					}
				}
			}
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	found := false
	for dec.Decode(&ds) == nil {
		if ds.Kind != "DaemonSet" {
			continue
		}
		found = true
		if !ds.Spec.Template.Spec.HostPID {
			t.Error("the DaemonSet needs hostPID (the host's /proc)")
		}
		c := ds.Spec.Template.Spec.Containers[0]
		if c.SecurityContext.Privileged || !slices.Equal(c.SecurityContext.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("security context %+v: want unprivileged, dropping ALL", c.SecurityContext)
		}
		want := []string{"BPF", "PERFMON", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}
		if !slices.Equal(c.SecurityContext.Capabilities.Add, want) {
			t.Errorf("capabilities %v, want %v (docs/agent.md explains each)", c.SecurityContext.Capabilities.Add, want)
		}
		checkAgentArgs(t, "daemonset", c.Args[1:])
	}
	if !found {
		t.Fatal("no DaemonSet in deploy/kubernetes/daemonset.yaml")
	}
	unit, err := os.ReadFile("../../../deploy/systemd/egress-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(unit), "\\\n", " ")
	for _, line := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart=/usr/local/bin/egress agent "); ok {
			checkAgentArgs(t, "systemd unit", strings.Fields(rest))
			return
		}
	}
	t.Error("no ExecStart of egress agent in the unit")
}

func checkAgentArgs(t *testing.T, where string, args []string) {
	t.Helper()
	cmd := newAgentCmd(&env{})
	if err := cmd.ParseFlags(args); err != nil {
		t.Errorf("%s: agent flags %v: %v", where, args, err)
	}
}

// TestPrivilegedContainerfile builds the Containerfile's image with Podman
// from the static binary and runs it.
func TestPrivilegedContainerfile(t *testing.T) {
	testnet.RequirePrivileged(t, "podman", "runc")
	bins := testnet.Build(t, "github.com/egress-dev/egress/cmd/egress")
	ctxDir := t.TempDir()
	cf, err := os.ReadFile("../../../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cf), "FROM scratch") {
		t.Error("the Containerfile is not FROM scratch")
	}
	os.WriteFile(filepath.Join(ctxDir, "Containerfile"), cf, 0o644)
	bin, _ := os.ReadFile(filepath.Join(bins, "egress"))
	os.WriteFile(filepath.Join(ctxDir, "egress"), bin, 0o755)
	image := "localhost/egress-containerfile:test"
	podman := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), "podman", append([]string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("podman %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	podman("build", "-f", filepath.Join(ctxDir, "Containerfile"), "-t", image, ctxDir)
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image).Run() })
	help := podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image, "agent", "--help")
	if !strings.Contains(help, "--metrics-listen") {
		t.Errorf("the image's egress agent --help:\n%s", help)
	}
}

// TestAlertRules: the alert examples of docs/agent.md are valid Prometheus
// rules (promtool, from Debian's prometheus package) and name only metrics
// the agent exports.
func TestAlertRules(t *testing.T) {
	testnet.RequirePrivileged(t, "promtool")
	path := "../../../deploy/prometheus/egress-alerts.yaml"
	if out, err := exec.Command("promtool", "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(path)
	doc, _ := os.ReadFile("../../../docs/agent.md")
	for _, f := range strings.FieldsFunc(string(b), func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z') }) {
		if strings.HasPrefix(f, "egress_") && !strings.Contains(string(doc), "`"+f+"`") {
			t.Errorf("the rules use %s, which docs/agent.md does not list", f)
		}
	}
}
