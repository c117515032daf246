package containers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	id1 = "4f1c2a7d9e0b3c6a8f5d2e1b0c9a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a"
	id2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid = "8d2c6f1e-3b4a-4c5d-9e8f-7a6b5c4d3e2f"
	// The systemd driver escapes the UID's dashes as underscores.
	uidU = "8d2c6f1e_3b4a_4c5d_9e8f_7a6b5c4d3e2f"
)

// The shapes below are those the runtimes make (as seen in /proc/PID/cgroup
// of their containers' processes).
func TestFromCgroupPath(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		want       Info
	}{
		{"host process", "/user.slice/user-0.slice/session-3.scope", Info{}},
		{"root cgroup", "/", Info{}},
		{"systemd service", "/system.slice/docker.service", Info{}},
		{"docker cgroupfs", "/docker/" + id1, Info{ID: id1}},
		{"docker systemd", "/system.slice/docker-" + id1 + ".scope", Info{ID: id1, Runtime: Docker}},
		{"podman systemd root", "/machine.slice/libpod-" + id1 + ".scope", Info{ID: id1, Runtime: Podman}},
		{"podman systemd init sub-cgroup", "/machine.slice/libpod-" + id1 + ".scope/container", Info{ID: id1, Runtime: Podman}},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope", Info{ID: id1, Runtime: Podman}},
		{"podman cgroupfs", "/libpod_parent/libpod-" + id1, Info{ID: id1, Runtime: Podman}},
		{"podman conmon is not the container", "/machine.slice/libpod-conmon-" + id1 + ".scope", Info{}},
		{"crio conmon is not the container", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-conmon-" + id1 + ".scope", Info{}},
		{"containerd systemd burstable", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope", Info{ID: id1, Runtime: Containerd, PodUID: uid}},
		{"containerd systemd besteffort", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope", Info{ID: id1, Runtime: Containerd, PodUID: uid}},
		{"containerd systemd guaranteed", "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope", Info{ID: id1, Runtime: Containerd, PodUID: uid}},
		{"crio systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/crio-" + id1 + ".scope", Info{ID: id1, Runtime: CRIO, PodUID: uid}},
		{"containerd cgroupfs", "/kubepods/burstable/pod" + uid + "/" + id1, Info{ID: id1, Runtime: Containerd, PodUID: uid}},
		{"containerd cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id1, Info{ID: id1, Runtime: Containerd, PodUID: uid}},
		{"crio cgroupfs", "/kubepods/besteffort/pod" + uid + "/crio-" + id1, Info{ID: id1, Runtime: CRIO, PodUID: uid}},
		{"dockershim systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/docker-" + id1 + ".scope", Info{ID: id1, Runtime: Docker, PodUID: uid}},
		{"containerd v1 systemd", "/system.slice/containerd.service/kubepods-burstable-pod" + uidU + ".slice:cri-containerd:" + id1, Info{ID: id1, Runtime: Containerd, PodUID: uid}},
		{"pod slice without container", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice", Info{}},
		{"nested: innermost wins", "/docker/" + id2 + "/docker/" + id1, Info{ID: id1}},
		{"short id is not an id", "/docker/" + id1[:63], Info{}},
		{"upper-case hex is not an id", "/docker/" + strings.ToUpper(id1), Info{}},
		{"bad pod uid", "/kubepods/burstable/pod1234/" + id1, Info{ID: id1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FromCgroupPath(tc.path); got != tc.want {
				t.Errorf("FromCgroupPath(%q)\n got %+v\nwant %+v", tc.path, got, tc.want)
			}
		})
	}
}

func TestFromProcCgroup(t *testing.T) {
	// A hybrid host: the v2 line is the host's session, the v1 controllers
	// hold the container (Docker's cgroupfs driver on a v1 controller).
	hybrid := "12:pids:/docker/" + id1 + "\n11:cpu,cpuacct:/docker/" + id1 + "\n1:name=systemd:/docker/" + id1 + "\n0::/user.slice/user-0.slice/session-1.scope\n"
	if got := FromProcCgroup([]byte(hybrid)); got.ID != id1 {
		t.Errorf("hybrid: got %+v", got)
	}
	v2 := "0::/machine.slice/libpod-" + id1 + ".scope/container\n"
	if got := FromProcCgroup([]byte(v2)); got != (Info{ID: id1, Runtime: Podman}) {
		t.Errorf("v2: got %+v", got)
	}
	if got := FromProcCgroup([]byte("0::/\n")); got.Known() {
		t.Errorf("host: got %+v", got)
	}
	if got := FromProcCgroup([]byte("garbage\n::\n")); got.Known() {
		t.Errorf("garbage: got %+v", got)
	}
}

func TestResolver(t *testing.T) {
	root := t.TempDir()
	proc := filepath.Join(root, "proc")
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(proc, "10/cgroup"), "0::/system.slice/docker-"+id1+".scope\n")
	write(filepath.Join(proc, "11/cgroup"), "0::/machine.slice/libpod-"+id2+".scope/container\n")
	write(filepath.Join(proc, "12/cgroup"), "0::/kubepods/burstable/pod"+uid+"/"+id1+"\n")
	write(filepath.Join(proc, "13/cgroup"), "0::/user.slice\n")
	write(filepath.Join(root, "var/lib/docker/containers", id1, "config.v2.json"), `{"ID":"`+id1+`","Name":"/web"}`)
	write(filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json"),
		`[{"id":"`+id1+`","names":["other"]},{"id":"`+id2+`","names":["shop","alias"]}]`)
	write(filepath.Join(root, "var/log/pods/default_shop-7d9f_"+uid+"/app/0.log"), "")
	r := NewResolver(proc, root)
	for _, tc := range []struct {
		pid  int
		want Info
	}{
		{10, Info{ID: id1, Runtime: Docker, Name: "web"}},
		{11, Info{ID: id2, Runtime: Podman, Name: "shop"}},
		// A pod of one container is named from the kubelet's log directory.
		{12, Info{ID: id1, Runtime: Containerd, PodUID: uid, Pod: "default/shop-7d9f", Name: "app"}},
		{13, Info{}},
		{99, Info{}}, // gone
	} {
		pid, want := tc.pid, tc.want
		if pid == 12 {
			r.names = nil // the same ID under another runtime: not from the cache
		}
		if got := r.ForPID(pid); got != want {
			t.Errorf("pid %d: got %+v, want %+v", pid, got, want)
		}
	}
	if !r.ForPID(11).Match("shop") || !r.ForPID(11).Match(id2[:12]) || r.ForPID(11).Match(id2[:11]) || r.ForPID(13).Match("") {
		t.Error("Match: name, 12-digit prefix, too short a prefix, host process")
	}
}

func FuzzFromProcCgroup(f *testing.F) {
	f.Add([]byte("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope\n"))
	f.Add([]byte("1:name=systemd:/docker/" + id1 + "\n0::/\n"))
	f.Add([]byte("0::/system.slice/containerd.service/kubepods-pod" + uidU + ".slice:cri-containerd:" + id1))
	f.Fuzz(func(t *testing.T, b []byte) {
		info := FromProcCgroup(b)
		if info.Known() {
			if _, _, ok := hexID(info.ID, ""); !ok {
				t.Errorf("ID %q is not 64 hex digits", info.ID)
			}
		}
		if info.PodUID != "" && (uuid(info.PodUID) == "" || !info.Known()) {
			t.Errorf("pod UID %q without a container or malformed", info.PodUID)
		}
		if !utf8.ValidString(info.ID + info.PodUID + info.Runtime) {
			t.Error("invalid UTF-8 out")
		}
	})
}

func TestCgroupPath(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "7/cgroup"), []byte("1:name=systemd:/x\n0::/system.slice/app.service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(proc, "")
	if r.CgroupPath(7) != "" {
		t.Error("a path before the process was looked up")
	}
	r.ForProcess(7, "app")
	if got := r.CgroupPath(7); got != "/system.slice/app.service" {
		t.Errorf("CgroupPath = %q", got)
	}
}
