// Package dnsproxy is the small DNS forwarder egress run puts in front of
// the command it runs: the cgroup hooks of package internal/enforce/block steer the
// command's port-53 traffic to it. For each query it asks a Policy whether
// the name may be resolved, forwards allowed queries to the real resolver,
// lets the Policy open the kernel's allow map for the answered addresses
// and only then relays the answer, so a connect to an allowed name never
// races its own lookup. Refused names get an immediate REFUSED answer.
//
// Every exchange is handed to an observer, which is how egress run sees
// the command's lookups without capturing packets. The queries in flight
// and the TCP connections are bounded; what exceeds the bounds, and what
// the kernel dropped before the proxy read it, is counted (Stats).
package dnsproxy
