// Command connload is the connect-heavy load of scripts/bench-watch.sh: it
// serves on a loopback port and, after -delay (time for egress watch to
// attach), connects to it from -workers goroutines as fast as it can for
// -duration, closing each connection at once, and prints what it achieved.
// Loopback only: it never sends a packet anywhere else.
package main
