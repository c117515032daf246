// Package testnet builds small networks of Linux network namespaces for
// privileged tests: namespaces, veth pairs, IPv4 and IPv6 addresses, routes,
// nftables rulesets, resolv.conf files and processes running inside them.
//
// It drives the ip(8) and nft(8) commands rather than netlink: the same
// commands testdata/record/record.sh runs, so a test and the recorded
// captures build the same topology the same way, and a failing step prints a
// command a human can rerun.
//
// Everything a Net creates is undone by Net.Close, in reverse order:
// processes are stopped before their namespace is deleted. NewForTest
// registers Close with t.Cleanup, so a failing test cleans up too.
//
// The commands under this directory are the actors of the story the
// captures tell: dnsd (a DNS server), vendord (the vendor's HTTP and HTTPS
// servers) and shopapp (a web shop whose admin login phones home).
package testnet
