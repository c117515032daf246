// Command shopapp is a tiny web shop whose admin login phones home.
//
// GET or POST /login calls, in order and each with its own connect timeout,
// the vendor's update check (plain HTTP) and license check (HTTPS, with SNI,
// certificate not verified), then answers 200 with one line per call saying
// what happened and how long it took. When a firewall silently drops the
// vendor's SYNs, each call blocks for its whole connect timeout, and so does
// the login: the story egress exists to explain.
//
// Names are resolved by Go's own resolver from /etc/resolv.conf (under
// `ip netns exec NS` that is /etc/netns/NS/resolv.conf). With -child one of
// the two calls runs as `sh -c 'curl ...'` in a child process instead, so
// eBPF tests can check that calls are attributed to the right process.
package main
