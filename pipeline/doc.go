// Package pipeline wires capture sources to the analyzer, the same way for
// replay, watch and run: it runs the sources, puts their observations in
// kernel-time order (one reorder step for every live mode), closes the
// window, drains what the kernel still held, copies everything to a pcapng
// tee, resolves the process behind DNS sockets, merges the calls the
// blocker refused, applies the rules and the catalog, and says what
// --fail-on matched. Commands parse flags and map the Result to exit codes.
//
//	sources ──► merge (time order) ──► stage ──► analyze ──► report
//	                                     └──► tee (pcapng)
package pipeline
