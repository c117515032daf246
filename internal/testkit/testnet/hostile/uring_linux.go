//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioUringParams is struct io_uring_params (include/uapi/linux/io_uring.h).
type ioUringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// ioUringSQE is the 64-byte struct io_uring_sqe, as far as sendmsg needs.
type ioUringSQE struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, msgFlags uint32
	userData      uint64
	pad           [3]uint64
}

const ioringOpSendmsg = 9

// uringSendmsg sends one UDP datagram to ap with IORING_OP_SENDMSG, the
// way a hostile app would hide a send from syscall tracers, and returns the
// completion's result.
func uringSendmsg(ap netip.AddrPort) string {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return "socket: " + result(err)
	}
	defer unix.Close(s)
	var p ioUringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return "io_uring_setup: " + result(errno)
	}
	defer unix.Close(int(fd))
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*16)
	sq, err := unix.Mmap(int(fd), 0, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return "mmap sq: " + result(err)
	}
	defer unix.Munmap(sq)
	cq, err := unix.Mmap(int(fd), 0x8000000, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return "mmap cq: " + result(err)
	}
	defer unix.Munmap(cq)
	sqes, err := unix.Mmap(int(fd), 0x10000000, int(p.sqEntries)*64, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return "mmap sqes: " + result(err)
	}
	defer unix.Munmap(sqes)

	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
	sa.Port = ap.Port()<<8 | ap.Port()>>8
	payload := []byte("exfiltrated over io_uring sendmsg")
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(len(payload))
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&sa)), Namelen: uint32(unsafe.Sizeof(sa)), Iov: &iov}
	msg.SetIovlen(1)

	sqe := (*ioUringSQE)(unsafe.Pointer(&sqes[0]))
	*sqe = ioUringSQE{opcode: ioringOpSendmsg, fd: int32(s), addr: uint64(uintptr(unsafe.Pointer(&msg))), len: 1}
	tail := (*uint32)(unsafe.Pointer(&sq[p.sqOff.tail]))
	mask := *(*uint32)(unsafe.Pointer(&sq[p.sqOff.ringMask]))
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&sq[p.sqOff.array])), p.sqEntries)
	array[*tail&mask] = 0
	*tail++
	const enterGetEvents = 1
	_, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, fd, 1, 1, enterGetEvents, 0, 0)
	runtime.KeepAlive(&msg)
	runtime.KeepAlive(&sa)
	runtime.KeepAlive(payload)
	if errno != 0 {
		return "io_uring_enter: " + result(errno)
	}
	head := *(*uint32)(unsafe.Pointer(&cq[p.cqOff.head]))
	cmask := *(*uint32)(unsafe.Pointer(&cq[p.cqOff.ringMask]))
	res := *(*int32)(unsafe.Pointer(&cq[p.cqOff.cqes+(head&cmask)*16+8]))
	if res < 0 {
		return result(syscall.Errno(-res))
	}
	return fmt.Sprintf("sent %d bytes", res)
}
