// Package cgrouprun runs a command in a cgroup v2 made for it, so egress
// run can watch (capture/ebpf, by cgroup id) and police (internal/enforce/block,
// attached to the cgroup) exactly the command and every process it starts,
// from its first instruction: the child is cloned straight into the cgroup
// (CLONE_INTO_CGROUP), never moved there after it ran.
//
// Launch runs the command confined, through a copy of egress that sets up
// namespaces, capabilities and no_new_privs before it starts the command
// (MaybeLaunch); Supervise starts a copy outside the cgroup that removes
// the cgroup tree, with the blocking programs still attached, should egress
// die first. docs/block.md ("Threat model") says what this holds against.
package cgrouprun
