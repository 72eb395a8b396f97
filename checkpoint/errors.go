package checkpoint

import (
	"errors"
	"fmt"
)

// Sentinel errors. Their texts carry the package prefix.
var (
	// ErrClosed is returned by a Checkpointer after Close.
	ErrClosed = errors.New("checkpoint: closed")
	// ErrUnsupportedVersion is wrapped by the CorruptionError of a snapshot
	// whose header is sound but whose format version this build cannot read.
	ErrUnsupportedVersion = errors.New("checkpoint: unsupported format version")
	// ErrChecksum is wrapped by every CorruptionError of a checksum mismatch.
	ErrChecksum = errors.New("checkpoint: checksum mismatch")
	// ErrTruncated is wrapped by the CorruptionError of a snapshot that ends
	// before its trailer.
	ErrTruncated = errors.New("checkpoint: snapshot ends early")
)

// Kinds of damage named by CorruptionError.Kind.
const (
	kindMagic        = "magic"
	kindVersion      = "version"
	kindHeaderLen    = "header length"
	kindHeaderCRC    = "header checksum"
	kindHeader       = "header"
	kindChunkLen     = "chunk length"
	kindChunkCRC     = "chunk checksum"
	kindCompressed   = "compressed body"
	kindTrailerCRC   = "trailer checksum"
	kindBodyCRC      = "body checksum"
	kindBodyLen      = "body length"
	kindTrailingData = "trailing data"
	kindTruncated    = "truncated"
	kindSeq          = "seq"
)

// CorruptionError reports damaged snapshot bytes: the file (empty for a
// stream such as a backup read from the network), the byte offset where the
// damage was found, its kind ("header checksum", "chunk checksum",
// "truncated", ...) and the cause. Find it with errors.As.
type CorruptionError struct {
	File   string
	Offset int64
	Kind   string
	Err    error
}

// Error names the file, the kind of damage and the offset.
func (e *CorruptionError) Error() string {
	file := e.File
	if file == "" {
		file = "stream"
	}
	return fmt.Sprintf("checkpoint: snapshot %s damaged at offset %d (%s): %v",
		file, e.Offset, e.Kind, e.Err)
}

// Unwrap returns the cause.
func (e *CorruptionError) Unwrap() error { return e.Err }

func corrupt(off int64, kind string, format string, args ...any) *CorruptionError {
	return &CorruptionError{Offset: off, Kind: kind, Err: fmt.Errorf(format, args...)}
}
