// Command vendord plays the vendor a web application phones home to: HTTP
// and HTTPS servers answering /check (an update check) and /v1/license (a
// license check).
//
// The HTTPS certificate is self-signed and generated at start (no files), for
// the names given by -names, so the client's ClientHello carries SNI as it
// would towards the real vendor; clients skip verification.
package main
