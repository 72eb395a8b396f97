// Package vfs is the small filesystem interface that the log and the
// snapshot writer use for every disk access. OS is the real one; Mem (see
// mem.go) is a strict in-memory one for tests that can simulate a crash and
// inject faults.
//
// The interface is deliberately narrow: it holds only the operations whose
// durability the log and the checkpointer reason about. A write is durable
// once File.Sync returns nil; a create, rename or remove is durable once
// SyncDir of its parent directory returns nil.
package vfs

import (
	"io"
	"os"
)

// File is an open file. Sync is fdatasync on Linux: it makes the file's
// data and size durable, not its name.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	// WriterAt writes at an offset, without moving the offset that Write
	// and Read use; concurrent WriteAt calls at distinct offsets are safe.
	io.WriterAt
	io.Seeker
	io.Closer

	// Sync makes every completed write to the file durable.
	Sync() error
	// Truncate changes the file's size; the change is durable after Sync.
	Truncate(size int64) error
	// Size reports the file's current size.
	Size() (int64, error)
	// Name is the path the file was opened with.
	Name() string
}

// FS is a filesystem. Paths are slash-separated and may be absolute.
type FS interface {
	// Create makes a new file or truncates an existing one, opened for
	// reading and writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading only.
	Open(name string) (File, error)
	// OpenRW opens an existing file for reading and writing, positioned at
	// offset 0.
	OpenRW(name string) (File, error)
	// Rename replaces newname with oldname atomically.
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll makes a directory and its missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of a directory's entries, sorted.
	List(dir string) ([]string, error)
	// Stat reports a file's size, or an error wrapping os.ErrNotExist.
	Stat(name string) (int64, error)
	// SyncDir makes the creates, renames and removes done in dir durable.
	SyncDir(dir string) error
}
