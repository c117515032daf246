// Package symbolize turns the return addresses of a process's thread (as
// the kernel's bpf_get_stack unwinds them) into frames: function, file,
// line and module.
//
// It reads /proc/PID/maps when it first meets a process (and again when an
// address falls outside every mapping it knows), keeps the mappings of
// processes that exit, and symbolizes each mapped file once, cached by
// device and inode: Go's pclntab (function, file, line; kept even by
// stripped Go binaries), ELF symbol tables (.symtab, .dynsym) for C and
// C++, and perf maps (/tmp/perf-PID.map) for JIT code (Node.js with
// --perf-basic-prof, Python 3.12+ with -X perf). Where no table covers an
// address, the frame names the module and its offset and nothing else: a
// missing name is shown as missing, never guessed from a neighbour.
//
// Pure Go: no cgo, no external tools. Everything read is untrusted (a
// watched process controls its own files and perf map): parsers return
// errors, never panic, and every table is bounded.
package symbolize
