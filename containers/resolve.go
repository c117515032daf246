package containers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Resolver finds the container of a process and the container's name. It
// caches by PID (bounded: it starts over when full), so a call's process
// is looked up once while it is alive. Safe for concurrent use.
type Resolver struct {
	// Proc is the proc file system ("/proc"); Root prefixes the runtimes'
	// state paths ("" on the host; the DaemonSet mounts the host's /var/lib
	// and /var/log read-only under /host).
	Proc, Root string

	mu                 sync.Mutex
	pids               map[int]pidEntry
	names              map[string]nameEntry
	lookups, evictions uint64
}

// Stats says how many times /proc was read and the PID cache started over.
func (r *Resolver) Stats() (lookups, evictions uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups, r.evictions
}

type nameEntry struct{ name, pod string }

type pidEntry struct {
	comm   string
	cgroup string // the cgroup v2 path
	info   Info
}

// maxCached bounds each cache.
const maxCached = 8192

// NewResolver reads under proc ("/proc") and the runtimes' state under root.
func NewResolver(proc, root string) *Resolver {
	return &Resolver{Proc: proc, Root: root}
}

// ForPID returns the container of pid (the zero Info for a host process or
// one that is gone).
func (r *Resolver) ForPID(pid int) Info { return r.ForProcess(pid, "") }

// ForProcess is ForPID for a process known by its command name too: a
// cached entry of another name is another process that had the PID before
// (PIDs are reused), so it is read again.
func (r *Resolver) ForProcess(pid int, comm string) Info {
	r.mu.Lock()
	if e, ok := r.pids[pid]; ok && (comm == "" || e.comm == "" || e.comm == comm) {
		r.mu.Unlock()
		return e.info
	}
	r.mu.Unlock()
	b, err := os.ReadFile(filepath.Join(r.Proc, strconv.Itoa(pid), "cgroup"))
	var info Info
	var cg string
	if err == nil {
		info, cg = FromProcCgroup(b), v2Path(b)
	}
	if info.Known() {
		info.Name, info.Pod = r.name(info)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if err != nil {
		return info // gone: do not cache, the PID may come back as another process
	}
	if r.pids == nil || len(r.pids) >= maxCached {
		if r.pids != nil {
			r.evictions++
		}
		r.pids = make(map[int]pidEntry)
	}
	r.pids[pid] = pidEntry{comm, cg, info}
	return info
}

// CgroupPath returns the cgroup v2 path of a process ForProcess has seen
// ("" when not cached or not in a v2 cgroup).
func (r *Resolver) CgroupPath(pid int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pids[pid].cgroup
}

// v2Path finds the "0::PATH" line of /proc/PID/cgroup.
func v2Path(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// Forget drops a PID from the cache (the process exited).
func (r *Resolver) Forget(pid int) {
	r.mu.Lock()
	delete(r.pids, pid)
	r.mu.Unlock()
}

// name looks the container's name up in the runtimes' state files, cached
// by ID (also when not found: a missing name is not looked for again until
// the cache starts over).
func (r *Resolver) name(info Info) (name, pod string) {
	r.mu.Lock()
	if e, ok := r.names[info.ID]; ok {
		r.mu.Unlock()
		return e.name, e.pod
	}
	r.mu.Unlock()
	switch info.Runtime {
	case Docker:
		name = dockerName(filepath.Join(r.Root, "/var/lib/docker/containers", info.ID, "config.v2.json"))
	case Podman:
		// containers/storage keeps one list per storage driver.
		for _, driver := range []string{"overlay", "vfs", "btrfs", "zfs"} {
			if name = podmanName(filepath.Join(r.Root, "/var/lib/containers/storage", driver+"-containers", "containers.json"), info.ID); name != "" {
				break
			}
		}
	}
	if info.PodUID != "" {
		pod, name = kubeletPod(filepath.Join(r.Root, "/var/log/pods"), info, name)
	}
	r.mu.Lock()
	if r.names == nil || len(r.names) >= maxCached {
		r.names = make(map[string]nameEntry)
	}
	r.names[info.ID] = nameEntry{name, pod}
	r.mu.Unlock()
	return name, pod
}

// maxState bounds a runtime state file read.
const maxState = 16 << 20

func readBounded(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, 0, 4096)
	for len(b) < maxState {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			break
		}
	}
	return b
}

// dockerName reads "Name" ("/web") from a container's config.v2.json.
func dockerName(path string) string {
	var c struct{ Name string }
	if json.Unmarshal(readBounded(path), &c) != nil {
		return ""
	}
	return strings.TrimPrefix(c.Name, "/")
}

// podmanName finds the container in containers/storage's containers.json
// (a list of {"id", "names"}).
func podmanName(path, id string) string {
	var cs []struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	}
	if json.Unmarshal(readBounded(path), &cs) != nil {
		return ""
	}
	for _, c := range cs {
		if c.ID == id && len(c.Names) > 0 {
			return c.Names[0]
		}
	}
	return ""
}

// kubeletPod finds the pod's log directory, /var/log/pods/NS_NAME_UID,
// and in it the container's directory (one per container name, holding
// N.log files; the container ID is not in the path, so a pod of one
// container is named surely and a pod of several only by the runtime's name).
func kubeletPod(dir string, info Info, name string) (pod, cname string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", name
	}
	for _, e := range ents {
		parts := strings.Split(e.Name(), "_")
		if len(parts) != 3 || parts[2] != info.PodUID {
			continue
		}
		pod = parts[0] + "/" + parts[1]
		if name == "" {
			if cs, err := os.ReadDir(filepath.Join(dir, e.Name())); err == nil && len(cs) == 1 {
				name = cs[0].Name()
			}
		}
		return pod, name
	}
	return "", name
}

// Match reports whether a container is the one named by s: its full ID, an
// ID prefix of at least 12 digits (as docker ps shows), or its name.
func (i Info) Match(s string) bool {
	if !i.Known() || s == "" {
		return false
	}
	if len(s) >= 12 && strings.HasPrefix(i.ID, s) {
		return true
	}
	return s == i.Name
}
