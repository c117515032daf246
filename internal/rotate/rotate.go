// Package rotate is an append-only file that rotates by size, for the
// agent's JSON lines: FILE grows to MaxSize, then becomes FILE.1 (FILE.1
// becomes FILE.2, and so on up to Keep files) and a new FILE starts. Each
// Write is kept whole in one file, so a writer that writes one line per
// call (report.JSONL does) never has a line split across files, and no
// line is lost: the rename happens between writes. Log shippers that
// follow FILE by name (Vector, Fluent Bit, Promtail) read the rest of the
// renamed file and pick up the new one.
package rotate

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// File is a size-rotated file. Safe for concurrent use.
type File struct {
	path    string
	maxSize int64
	keep    int

	mu        sync.Mutex
	f         *os.File
	size      int64
	rotations uint64
}

// Open opens (appends to) path; it rotates once a write would take it past
// maxSize bytes, keeping keep old files (at least 1).
func Open(path string, maxSize int64, keep int) (*File, error) {
	if maxSize <= 0 {
		return nil, errors.New("rotate: the size limit must be positive")
	}
	r := &File{path: path, maxSize: maxSize, keep: max(keep, 1)}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *File) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open output: %w", err)
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating first when p would not fit (a write larger
// than the limit gets a file of its own).
func (r *File) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate shifts FILE.N-1 to FILE.N ... FILE to FILE.1 and opens a new FILE.
func (r *File) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("rotate output: %w", err)
	}
	r.f = nil
	for i := r.keep - 1; i >= 1; i-- {
		if err := os.Rename(r.name(i), r.name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate output: %w", err)
		}
	}
	if err := os.Rename(r.path, r.name(1)); err != nil {
		return fmt.Errorf("rotate output: %w", err)
	}
	r.rotations++
	return r.open()
}

func (r *File) name(i int) string { return r.path + "." + strconv.Itoa(i) }

// Reopen closes and reopens FILE (after an outside tool moved it: SIGHUP).
func (r *File) Reopen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.f.Close()
	}
	return r.open()
}

// Rotations says how many times the file was rotated.
func (r *File) Rotations() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rotations
}

// Close closes the file.
func (r *File) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
