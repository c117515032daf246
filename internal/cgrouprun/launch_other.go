//go:build !linux

package cgrouprun

// MaybeLaunch does nothing where egress run does not exist.
func MaybeLaunch() {}
