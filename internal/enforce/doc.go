// Package enforce turns what egress run's cgroup programs (internal/enforce/block)
// refused and reported into report records: refused connects and sends,
// UDP and child-cgroup calls the tracepoints do not see, and the packets
// of the cgroup catch-all (ICMP, raw sockets). Every call is counted in some
// record, also past the record limit.
package enforce
