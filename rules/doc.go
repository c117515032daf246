// Package rules decides whether an observed destination was expected.
//
// A Policy is a small YAML allowlist (see docs/rules.md): destinations by
// host name or glob, CIDR, port, protocol and process, with deny entries
// that win over allow entries. Parse reports every mistake in a policy at
// once, each as FILE:LINE with a hint, because a policy is usually edited by
// hand and checked in CI where a second round trip is expensive.
//
// The embedded Catalog names known phone-home endpoints of common web apps,
// frameworks and tools (update checks, telemetry, license checks) and how to
// turn each off, so a report can label a call instead of just flagging it.
//
// Suggest writes a starter policy from what was observed.
//
// Nothing here touches the network; matching is pure and safe for concurrent
// use once a Policy or Catalog is built.
package rules
