// Package capture holds the sources that turn what egress can see into
// observations (package event): capture files (pcapfile), the kernel's
// socket tracepoints (ebpf) and live packet capture. Sources read; they never
// classify: deciding what an observation means is package analyze's job.
package capture
