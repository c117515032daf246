// Package baseline compares egress reports across runs: which destinations
// are new since an earlier report, which are gone, and which changed
// outcome (egress diff), and turns an earlier report into allow entries so
// a check fails only on what is new (--baseline).
//
// A destination is its name where one is known, else its address, with
// its port, protocol and process (the command name; pids change from run
// to run). Names that churn match as a family (Name): docs/ci.md.
package baseline
