//go:build !linux

package dnsproxy

import "net"

func countDrops(*net.UDPConn) {}

func rxqOverflow([]byte) (uint32, bool) { return 0, false }
