package containers

import (
	"bytes"
	"strings"
)

// Runtime names, as they appear in Info.Runtime.
const (
	Docker     = "docker"
	Podman     = "podman"
	Containerd = "containerd"
	CRIO       = "cri-o"
)

// Info is what a cgroup path says about a process's container. The zero
// value means "not in a container we recognise" (a host process).
type Info struct {
	ID      string // the container ID: 64 lower-case hex digits
	Runtime string // Docker, Podman, Containerd, CRIO; "" when only the ID shape is known
	PodUID  string // the Kubernetes pod UID (with dashes), "" outside a pod
	Name    string // the container's name, when a runtime's state said it
	Pod     string // "namespace/name" of the pod, when the kubelet's logs said it
}

// Known reports whether the process is in a container.
func (i Info) Known() bool { return i.ID != "" }

// maxPath bounds the cgroup path parsed (the kernel's limit is PATH_MAX).
const maxPath = 4096

// FromCgroupPath reads a container ID and pod UID out of one cgroup path
// (the part after "0::" in /proc/PID/cgroup). The shapes:
//
//	/docker/ID                                    Docker, cgroupfs driver
//	/system.slice/docker-ID.scope                 Docker, systemd driver
//	/machine.slice/libpod-ID.scope[/container]    Podman, systemd (root)
//	/user.slice/.../libpod-ID.scope[/container]   Podman, systemd (rootless)
//	/libpod_parent/libpod-ID[/container]          Podman, cgroupfs
//	/kubepods.slice/kubepods-QOS.slice/kubepods-QOS-podUID.slice/cri-containerd-ID.scope
//	/kubepods.slice/kubepods-QOS.slice/kubepods-QOS-podUID.slice/crio-ID.scope
//	/kubepods.slice/kubepods-podUID.slice/...     (the Guaranteed QoS class)
//	/kubepods/QOS/podUID/ID                       containerd, cgroupfs
//	/kubepods/QOS/podUID/crio-ID                  CRI-O, cgroupfs
//	/system.slice/containerd.service/kubepods-QOS-podUID.slice:cri-containerd:ID  (cgroup v1, systemd)
//
// A runtime's monitor (libpod-conmon-ID, crio-conmon-ID) is not the
// container. The innermost container-shaped element wins (a container
// nested in another reports its own ID).
func FromCgroupPath(path string) Info {
	if len(path) > maxPath {
		path = path[:maxPath]
	}
	var info Info
	for _, el := range strings.Split(path, "/") {
		if parts := strings.Split(el, ":"); len(parts) == 3 {
			// cgroup v1 under systemd with a CRI runtime: "POD.slice:RUNTIME:ID".
			rt, known := map[string]string{"cri-containerd": Containerd, "crio": CRIO, "docker": Docker}[parts[1]]
			if id, _, ok := hexID(parts[2], rt); ok && known {
				info.ID, info.Runtime, info.PodUID = id, rt, podUID(parts[0])
			}
			continue
		}
		if uid := podUID(el); uid != "" {
			info.PodUID = uid
			continue
		}
		if id, rt, ok := containerElement(el); ok {
			info.ID, info.Runtime = id, rt
		}
	}
	if info.ID == "" {
		info.PodUID = "" // a pod's slice without a container: the pause or a sandbox we cannot tell
	}
	if info.PodUID != "" && info.Runtime == "" {
		info.Runtime = Containerd // the bare-ID shape under kubepods is containerd's cgroupfs layout
	}
	return info
}

// containerElement recognises one path element naming a container.
func containerElement(el string) (id, runtime string, ok bool) {
	el = strings.TrimSuffix(el, ".scope")
	for _, p := range []struct{ prefix, runtime string }{
		{"libpod-conmon-", ""},
		{"crio-conmon-", ""},
		{"docker-", Docker},
		{"libpod-", Podman},
		{"cri-containerd-", Containerd},
		{"crio-", CRIO},
	} {
		if strings.HasPrefix(el, p.prefix) {
			if p.runtime == "" {
				return "", "", false // a monitor, not the container
			}
			return hexID(el[len(p.prefix):], p.runtime)
		}
	}
	return hexID(el, "")
}

// hexID accepts exactly 64 lower-case hex digits, the IDs every runtime
// here makes.
func hexID(s, runtime string) (string, string, bool) {
	if len(s) != 64 {
		return "", "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", "", false
		}
	}
	return s, runtime, true
}

// podUID recognises the kubelet's pod cgroup: "podUID" (cgroupfs, dashes)
// or "kubepods[-QOS]-podUID.slice" (systemd, dashes escaped to
// underscores). It returns the UID with dashes.
func podUID(el string) string {
	if strings.HasSuffix(el, ".slice") && strings.HasPrefix(el, "kubepods") {
		i := strings.LastIndex(el, "-pod")
		if i < 0 {
			return ""
		}
		return uuid(strings.ReplaceAll(el[i+4:len(el)-len(".slice")], "_", "-"))
	}
	if strings.HasPrefix(el, "pod") {
		return uuid(el[3:])
	}
	return ""
}

// uuid accepts the 8-4-4-4-12 hex form.
func uuid(s string) string {
	if len(s) != 36 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return ""
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return ""
			}
		}
	}
	return s
}

// FromProcCgroup reads the contents of /proc/PID/cgroup (one
// "ID:CONTROLLERS:PATH" line per hierarchy; cgroup v2's is "0::PATH").
// The v2 line is tried first, then the v1 lines in order, since a hybrid
// host (systemd's default before v2-only) keeps containers' cgroups under
// the v1 controllers while the v2 path may be the host's.
func FromProcCgroup(data []byte) Info {
	var v1 []string
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		parts := bytes.SplitN(line, []byte(":"), 3)
		if len(parts) != 3 {
			continue
		}
		if string(parts[0]) == "0" && len(parts[1]) == 0 {
			if info := FromCgroupPath(string(parts[2])); info.Known() {
				return info
			}
			continue
		}
		v1 = append(v1, string(parts[2]))
		if len(v1) > 32 {
			break
		}
	}
	for _, p := range v1 {
		if info := FromCgroupPath(p); info.Known() {
			return info
		}
	}
	return Info{}
}
