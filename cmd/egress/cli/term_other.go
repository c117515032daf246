//go:build !linux && !windows && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package cli

import "io"

// isTerminal: no progress line where egress cannot tell.
func isTerminal(io.Writer) bool { return false }
