// Package capture holds the sources that turn what egress can see into
// observations (package event): capture files (pcapfile), the kernel's
// socket tracepoints (ebpf), live packet capture (afpacket), and what egress
// run's blocker and DNS proxy see. Each is a Source (source.go); package
// pipeline runs them. Sources read; they never classify: deciding what an
// observation means is package analyze's job.
package capture
