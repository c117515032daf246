// Package analyze turns a stream of observations (package event) into a
// report: every outbound connection attempt and DNS lookup with its outcome,
// the names behind the addresses, the time each one blocked its caller, and
// the share of the window that was spent blocked.
//
// The analyzer is pure and deterministic: it reads no clock and does no I/O;
// every time comes from the observations, so a replay is golden-testable and
// a live watch and the replay of what it wrote give the same report.
//
// Memory is bounded by concurrent flows, not by capture size: the flow,
// lookup and name tables have fixed capacities, and what they evict is
// counted in the report's stats.
package analyze
