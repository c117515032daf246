// Command dnsd is a tiny authoritative DNS server for test networks.
//
// It serves one in-memory zone over UDP and TCP: A, AAAA and CNAME records
// given with -rr flags or a -zone file (one "name TYPE value" per line).
// Unknown names get NXDOMAIN, known names without the asked type get an empty
// NOERROR answer (NODATA), CNAME chains inside the zone are followed. With
// -silent it reads queries and never answers, the way a firewalled resolver
// looks to a client.
//
// It exists so the recorded captures and privileged tests never touch the
// machine's resolver.
//
//	dnsd -listen 198.18.0.1:53 \
//	  -rr 'updates.vendor.test A 198.51.100.10' \
//	  -rr 'api.vendor.test CNAME edge.vendor.test' \
//	  -rr 'edge.vendor.test A 198.51.100.11'
package main
