//go:build linux

package dnsproxy

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// countDrops asks the kernel to tell, with each datagram read, how many it
// dropped on c for a full socket buffer (SO_RXQ_OVFL).
func countDrops(c *net.UDPConn) {
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1) })
	}
}

// rxqOverflow returns the kernel's cumulative drop count from the control
// messages of a read.
func rxqOverflow(oob []byte) (uint32, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4 {
			return binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return 0, false
}
