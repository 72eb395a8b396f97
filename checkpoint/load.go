package checkpoint

import (
	"fmt"
	"io"
	"strings"

	"github.com/pstate/pstate/wal/vfs"
)

// LoadOptions tunes LoadWith. The zero value is what Load uses.
type LoadOptions struct {
	// Progress, when set, is called while a snapshot file is read, with its
	// path, the bytes read so far and its size: every 4 MiB and at the end.
	Progress func(path string, read, size int64)
}

// GapError is returned by Load when no snapshot can be used with the log:
// the newest sound one needs log records the log no longer holds. It
// unwraps to the damage found on the way (each a *CorruptionError or a read
// error), newest first.
type GapError struct {
	Dir      string
	Damaged  []error
	Snapshot Info // the sound snapshot the log does not cover; zero if none is left
}

// Error names each damaged file and what is missing.
func (e *GapError) Error() string {
	var b strings.Builder
	b.WriteString("checkpoint: ")
	for _, err := range e.Damaged {
		b.WriteString(strings.TrimPrefix(err.Error(), "checkpoint: "))
		b.WriteString("; ")
	}
	older := ""
	if len(e.Damaged) > 0 {
		older = "older "
	}
	switch {
	case e.Snapshot.Path != "":
		fmt.Fprintf(&b, "%ssnapshot %s at seq %d needs the log from seq %d, "+
			"but the log no longer holds it", older, e.Snapshot.Path, e.Snapshot.Seq,
			e.Snapshot.Seq+1)
	default:
		fmt.Fprintf(&b, "no %ssnapshot in %s, and the log does not start at seq 1",
			older, e.Dir)
	}
	return b.String()
}

// Unwrap returns the damage found.
func (e *GapError) Unwrap() []error { return e.Damaged }

// Load finds the snapshot to recover from: the newest sound one in dir
// (every checksum verified) whose seq the log covers. covers(seq) must
// report whether the log holds every record after seq, that is whether its
// first seq is at most seq+1; covers(0) asks whether the log alone holds the
// whole history.
//
// fn is called with each snapshot tried, newest first. A snapshot that turns
// out damaged (or unreadable) is added to damaged, and fn must throw away
// what it built from it; the next older one is tried if the log covers it.
// used is the snapshot fn built the state from, or the zero Info when none
// was used (no snapshot, or all damaged while covers(0)): the state is then
// the empty one and the whole log is replayed.
//
// err is a *GapError when the log does not cover the newest sound snapshot
// (or, with none left, does not start at seq 1); it is fn's own error,
// wrapped with the file, when fn fails on a sound snapshot; or an error
// listing dir. Fallback never skips damage silently: every damaged file is
// in damaged, for the caller to log.
func Load(fsys vfs.FS, dir string, covers func(seq uint64) bool,
	fn func(meta Meta, body io.Reader) error) (used Info, damaged []error, err error) {
	return LoadWith(fsys, dir, covers, fn, LoadOptions{})
}

// LoadWith is Load with options.
func LoadWith(fsys vfs.FS, dir string, covers func(seq uint64) bool,
	fn func(meta Meta, body io.Reader) error, opts LoadOptions) (Info, []error, error) {
	infos, err := List(fsys, dir)
	if err != nil {
		return Info{}, nil, err
	}

	var damaged []error
	for _, info := range infos {
		// covers is monotone: if the log does not cover this snapshot, it
		// covers no older one either.
		if !covers(info.Seq) {
			return Info{}, damaged, &GapError{Dir: dir, Damaged: damaged, Snapshot: info}
		}

		var progress func(read, size int64)
		if opts.Progress != nil {
			p := info.Path
			progress = func(read, size int64) { opts.Progress(p, read, size) }
		}
		fnFailed, err := read(fsys, info.Path, progress, fn)
		switch {
		case err == nil:
			return info, damaged, nil
		case fnFailed:
			return Info{}, damaged, fmt.Errorf("checkpoint: load %s: %w", info.Path, err)
		}
		damaged = append(damaged, err)
	}

	if !covers(0) {
		return Info{}, damaged, &GapError{Dir: dir, Damaged: damaged}
	}
	return Info{}, damaged, nil
}
