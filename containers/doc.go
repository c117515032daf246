// Package containers says which container and pod a process runs in, from
// its cgroup path: container runtimes name the cgroup of each container
// after its ID (Docker, Podman, containerd and CRI-O, under the systemd and
// the cgroupfs cgroup drivers), and the kubelet names the pod's cgroup
// after the pod UID. Names come from the runtimes' state files where they
// are readable (Docker, Podman, the kubelet's pod log directories); the ID
// is enough to join with what the runtime reports.
//
// Cgroup paths come from /proc/PID/cgroup, which any process can make
// long or strange inside its own cgroup namespace: the parser takes only
// what matches the runtimes' shapes and never fails loudly.
package containers
