package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/pstate/pstate/wal/vfs"
)

const (
	filePrefix = "snap-"
	fileSuffix = ".pst"
	tempSuffix = ".tmp"
	seqDigits  = 20
)

// Info describes a snapshot file.
type Info struct {
	Path  string // dir/snap-<seq, 20 digits>.pst
	Seq   uint64 // seq of the last event in the snapshot
	Bytes int64  // size of the file
}

// fileName is the name of the snapshot at seq; names sort by seq.
func fileName(seq uint64) string {
	return fmt.Sprintf("%s%0*d%s", filePrefix, seqDigits, seq, fileSuffix)
}

// parseName returns the seq of a snapshot file name, or false for any other
// name (temporary files included).
func parseName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, fileSuffix)
	if !ok || len(digits) != seqDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// Write makes the snapshot of meta.Seq durable in dir, which must exist:
// it encodes into dir/snap-<seq>.pst.tmp, fsyncs it, renames it to
// dir/snap-<seq>.pst (replacing a file of that seq) and fsyncs dir. Only
// then is the snapshot durable and may the log be truncated. The file is
// also fsynced every syncEvery bytes as it is written, so that the last
// fsync has little left to flush (see syncWriter).
//
// If encoding, writing or an fsync of the file fails, the temporary file is
// removed and the error returned; older snapshots are untouched. A failed
// fsync is never retried. If only the directory's fsync fails, the renamed
// file (whose bytes are synced) stays and the error is returned: whether its
// name survives a crash is unknown, so the caller must not truncate the log.
func Write(fsys vfs.FS, dir string, meta Meta, body func(w io.Writer) error) (Info, error) {
	return write(fsys, dir, meta, body, newPacer(nil, 0, nil))
}

// write is Write with the encoding paced by p (see pacer).
func write(fsys vfs.FS, dir string, meta Meta, body func(w io.Writer) error,
	p *pacer) (Info, error) {
	final := path.Join(dir, fileName(meta.Seq))
	tmp := final + tempSuffix

	f, err := fsys.Create(tmp)
	if err != nil {
		return Info{}, fmt.Errorf("checkpoint: create %s: %w", tmp, err)
	}
	n, err := encode(&syncWriter{f: f, p: p}, meta, body, p)
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("checkpoint: sync %s: %w", tmp, err)
		}
	}
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("checkpoint: close %s: %w", tmp, cerr)
	}
	if err != nil {
		return Info{}, removeAfter(fsys, tmp, err)
	}

	if err := fsys.Rename(tmp, final); err != nil {
		err = fmt.Errorf("checkpoint: rename %s: %w", tmp, err)
		return Info{}, removeAfter(fsys, tmp, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return Info{}, fmt.Errorf("checkpoint: sync dir %s: %w", dir, err)
	}
	return Info{Path: final, Seq: meta.Seq, Bytes: n}, nil
}

// syncEvery is how many bytes of a snapshot file are written between two
// fsyncs of it. A variable for the tests only.
var syncEvery int64 = 1 << 20

// syncWriter writes a snapshot file and fsyncs it every syncEvery bytes.
//
// Why: on ext4 (data=ordered) an fdatasync of the log commits the journal,
// and that commit may have to wait for the data of other files whose
// blocks it allocates, the snapshot's dirty pages among them. Left to the
// final fsync, tens of MiB of snapshot (1M jobs) would be flushed at once
// while the writers' fdatasyncs wait; synced as it goes, at most syncEvery
// bytes stand in their way. The log's own truncation paces its copy the
// same way. A failed fsync fails the write; it is never retried.
type syncWriter struct {
	f        vfs.File
	p        *pacer // told of the time spent syncing
	unsynced int64
}

func (s *syncWriter) Write(b []byte) (int, error) {
	n, err := s.f.Write(b)
	s.unsynced += int64(n)
	if err != nil || s.unsynced < syncEvery {
		return n, err
	}
	s.unsynced = 0
	if err := s.f.Sync(); err != nil {
		return n, fmt.Errorf("sync %s: %w", s.f.Name(), err)
	}
	s.p.rest()
	return n, nil
}

// removeAfter removes the temporary file of a failed Write and returns err,
// noting a failed removal in it.
func removeAfter(fsys vfs.FS, tmp string, err error) error {
	if rerr := fsys.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return fmt.Errorf("%w (remove %s: %v)", err, tmp, rerr)
	}
	return err
}

// List returns the snapshots in dir, newest (highest seq) first. Temporary
// files and names of any other form are not listed.
func List(fsys vfs.FS, dir string) ([]Info, error) {
	names, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %s: %w", dir, err)
	}
	var infos []Info
	for _, name := range names {
		seq, ok := parseName(name)
		if !ok {
			continue
		}
		p := path.Join(dir, name)
		size, err := fsys.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: stat %s: %w", p, err)
		}
		infos = append(infos, Info{Path: p, Seq: seq, Bytes: size})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Seq > infos[j].Seq })
	return infos, nil
}

// Read decodes the snapshot file at path as Decode does, and also checks
// that the seq in its header is the one in its name. A *CorruptionError
// carries path as its File.
func Read(fsys vfs.FS, path string, fn func(meta Meta, body io.Reader) error) error {
	_, err := read(fsys, path, nil, fn)
	return err
}

// read is Read with an optional progress callback. fnFailed reports that err
// is fn's own error on a body read without fault.
func read(fsys vfs.FS, p string, progress func(read, size int64),
	fn func(meta Meta, body io.Reader) error) (fnFailed bool, err error) {
	f, err := fsys.Open(p)
	if err != nil {
		return false, fmt.Errorf("checkpoint: open %s: %w", p, err)
	}
	defer f.Close()

	var r io.Reader = f
	if progress != nil {
		size, err := f.Size()
		if err != nil {
			return false, fmt.Errorf("checkpoint: size of %s: %w", p, err)
		}
		r = &progressReader{r: f, size: size, fn: progress}
	}
	check := func(meta Meta) error {
		if seq, ok := parseName(path.Base(p)); ok && seq != meta.Seq {
			return corrupt(16, kindSeq, "header seq %d, file name says %d", meta.Seq, seq)
		}
		return nil
	}

	fnFailed, err = decode(r, check, fn)
	var ce *CorruptionError
	if errors.As(err, &ce) && ce.File == "" {
		ce.File = p
	}
	return fnFailed, err
}

// progressReader reports the bytes read every progressStep and at the end.
type progressReader struct {
	r          io.Reader
	size, n    int64
	lastReport int64
	fn         func(read, size int64)
}

const progressStep = 4 << 20

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.lastReport >= progressStep || (err == io.EOF && p.n != p.lastReport) {
		p.lastReport = p.n
		p.fn(p.n, p.size)
	}
	return n, err
}

// Prune removes all but the keep newest snapshots of dir (keep >= 1),
// oldest first, then fsyncs dir.
func Prune(fsys vfs.FS, dir string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("checkpoint: prune to keep %d: must keep at least 1", keep)
	}
	infos, err := List(fsys, dir)
	if err != nil || len(infos) <= keep {
		return err
	}
	for i := len(infos) - 1; i >= keep; i-- {
		if err := fsys.Remove(infos[i].Path); err != nil {
			return fmt.Errorf("checkpoint: remove %s: %w", infos[i].Path, err)
		}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("checkpoint: sync dir %s: %w", dir, err)
	}
	return nil
}

// RemoveTemp removes the temporary snapshot files (snap-*.tmp) a crash left
// in dir; the daemon calls it at start, before any checkpoint runs.
func RemoveTemp(fsys vfs.FS, dir string) error {
	names, err := fsys.List(dir)
	if err != nil {
		return fmt.Errorf("checkpoint: list %s: %w", dir, err)
	}
	removed := false
	for _, name := range names {
		if !strings.HasPrefix(name, filePrefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		p := path.Join(dir, name)
		if err := fsys.Remove(p); err != nil {
			return fmt.Errorf("checkpoint: remove %s: %w", p, err)
		}
		removed = true
	}
	if removed {
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("checkpoint: sync dir %s: %w", dir, err)
		}
	}
	return nil
}
