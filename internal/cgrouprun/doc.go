// Package cgrouprun runs a command in a cgroup v2 made for it, so egress
// run can watch (capture/ebpf, by cgroup id) and police (capture/block,
// attached to the cgroup) exactly the command and every process it starts,
// from its first instruction: the child is cloned straight into the cgroup
// (CLONE_INTO_CGROUP), never moved there after it ran.
package cgrouprun
