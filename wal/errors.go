package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Their texts carry the package prefix.
var (
	// ErrFailed is wrapped, with the cause, by every error of a log that a
	// failed write or fsync left read-only.
	ErrFailed = errors.New("wal: log failed")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("wal: log closed")
	// ErrRecordTooLarge is returned by Write for a payload above
	// Options.MaxRecordSize.
	ErrRecordTooLarge = errors.New("wal: record too large")
)

// Kinds of damage named by CorruptionError.Kind.
const (
	KindHeader   = "file header"
	KindLength   = "record length"
	KindChecksum = "record checksum"
	KindSequence = "record seq"
)

// CorruptionError reports damage in a log file that is not a torn last
// record: the file, the byte offset of the damaged record (or 0 for the
// file header), the kind of damage and the cause. Find it with errors.As.
type CorruptionError struct {
	File   string
	Offset int64
	Kind   string
	Err    error
}

// Error names the file, the offset and the kind of damage.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: log %s damaged at offset %d (%s): %v", e.File, e.Offset, e.Kind, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptionError) Unwrap() error { return e.Err }

// failedError is the sticky error of a failed log: it matches ErrFailed
// and the cause.
type failedError struct{ cause error }

func (e *failedError) Error() string { return "wal: log failed: " + e.cause.Error() }

func (e *failedError) Unwrap() []error { return []error{ErrFailed, e.cause} }
