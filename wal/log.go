package wal

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pstate/pstate/wal/vfs"
)

// Names of the files in the log's directory.
const (
	fileName = "pstate.wal"
	tmpName  = fileName + ".tmp"
)

// Log is a write-ahead log in one file. Its methods are safe for
// concurrent use. See the package comment for the locks and their order.
type Log struct {
	opts Options
	fs   vfs.FS
	dir  string
	path string
	tmp  string

	// Lock-free state. firstSeq, nextSeq, written and size are stored
	// under mu; durable by whoever completed the fsync; processed by the
	// caller. They are read without any lock.
	processed atomic.Uint64
	firstSeq  atomic.Uint64
	nextSeq   atomic.Uint64
	written   atomic.Uint64 // seq of the last record written
	durable   atomic.Uint64 // seq of the last record known durable
	size      atomic.Int64
	failure   atomic.Pointer[failedError]
	// syncFailed is set once an fsync (of a file or the directory) failed:
	// from then on nothing is fsync'd or reported durable again.
	syncFailed atomic.Bool
	closed     atomic.Bool

	// truncMu serialises TruncateBefore, Replay and Close. It is held
	// across a whole truncation, but writers never take it.
	truncMu sync.Mutex

	// flushMu is held for a whole sync round, and by whoever closes a
	// handle that a sync round may be using.
	flushMu sync.Mutex

	// dirMu guards dirSynced: the generation of the last rename of the
	// log file whose directory fsync succeeded.
	dirMu     sync.Mutex
	dirSynced uint64

	// mu guards w, the writer's state.
	mu sync.Mutex
	w  writerState

	commit committer
}

// writerState is guarded by Log.mu.
type writerState struct {
	f vfs.File
	// off is the end of the last complete record; alloc the file's size:
	// off, or past it the zeros laid ahead of the records (preallocate).
	off   int64
	alloc int64
	// header is the current file's header; limit is the payload limit
	// Write enforces, never above header.maxRecord.
	header fileHeader
	limit  int
	buf    []byte
	// dual, during a truncation, is the new file that receives a copy of
	// every record with seq >= dualBase, written at dualOff.
	dual     vfs.File
	dualBase uint64
	dualOff  int64
	// dirGen counts renames of the log file; the flusher fsyncs the
	// directory before it reports records written after one as durable.
	dirGen uint64
}

// Open opens the log in dir, creating dir and an empty log if needed. It
// removes stray temporary files, checks every record, cuts a torn last
// record (reported through Options.OnRepair) and returns a
// *CorruptionError for any other damage.
func Open(dir string, opts Options) (*Log, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	l := &Log{opts: opts, fs: opts.FS, dir: dir,
		path: path.Join(dir, fileName), tmp: path.Join(dir, tmpName)}
	if err := l.prepareDir(); err != nil {
		return nil, err
	}
	if err := l.openFile(); err != nil {
		return nil, err
	}

	// A log written under a smaller limit is rewritten with the new limit
	// in its header, so that the reader accepts every record Write will.
	if opts.MaxRecordSize > int(l.w.header.maxRecord) {
		if err := l.truncate(l.firstSeq.Load(), true); err != nil {
			_ = l.w.f.Close()
			return nil, fmt.Errorf("wal: rewrite log for a larger max record size: %w", err)
		}
	}
	l.commit.start(l)
	return l, nil
}

// prepareDir makes the directory, durably, and removes stray temporary
// files left by a crash during a truncation.
func (l *Log) prepareDir() error {
	if err := makeDirDurable(l.fs, path.Clean(l.dir)); err != nil {
		return fmt.Errorf("wal: make dir: %w", err)
	}
	names, err := l.fs.List(l.dir)
	if err != nil {
		return fmt.Errorf("wal: list dir: %w", err)
	}
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			if err := l.fs.Remove(path.Join(l.dir, name)); err != nil {
				return fmt.Errorf("wal: remove temp file: %w", err)
			}
		}
	}
	return nil
}

// makeDirDurable makes dir and its missing parents and fsyncs the parent
// of each directory it made, top down.
func makeDirDurable(fsys vfs.FS, dir string) error {
	var missing []string
	for d := dir; ; d = path.Dir(d) {
		if _, err := fsys.List(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if d == path.Dir(d) {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := fsys.SyncDir(path.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// openFile opens (or creates) the log file, scans it and repairs a torn
// tail. It sets up the writer's state.
func (l *Log) openFile() error {
	if _, err := l.fs.Stat(l.path); errors.Is(err, os.ErrNotExist) {
		h := fileHeader{version: FormatVersion, maxRecord: uint32(l.opts.MaxRecordSize), baseSeq: 1}
		if err := l.create(h); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("wal: stat log: %w", err)
	}

	f, err := l.fs.OpenRW(l.path)
	if err != nil {
		return fmt.Errorf("wal: open log: %w", err)
	}
	if err := l.recover(f); err != nil {
		_ = f.Close()
		return err
	}
	return nil
}

// create writes an empty log with header h: temp file, fsync, rename,
// fsync the directory.
func (l *Log) create(h fileHeader) error {
	f, err := l.fs.Create(l.tmp)
	if err != nil {
		return fmt.Errorf("wal: create log: %w", err)
	}
	_, err = f.Write(encodeFileHeader(h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(l.tmp, l.path)
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		_ = l.fs.Remove(l.tmp)
		return fmt.Errorf("wal: create log: %w", err)
	}
	return nil
}

// recover scans the open log file, cuts a torn tail and fills w.
func (l *Log) recover(f vfs.File) error {
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("wal: size of log: %w", err)
	}
	res, err := scanFile(f, l.path, size, nil)
	if err != nil {
		return err
	}

	// Cut the torn tail durably before anything is appended after it.
	if res.tornOff >= 0 {
		if err := f.Truncate(res.tornOff); err != nil {
			return fmt.Errorf("wal: cut torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("wal: sync after cutting torn tail: %w", err)
		}
		if l.opts.OnRepair != nil {
			l.opts.OnRepair(l.path, res.tornOff, res.tornReason)
		}
	} else if l.opts.Sync != SyncNone {
		// NB: records found here may sit only in the page cache of a
		// process that was killed; they count as durable only after this.
		if err := f.Sync(); err != nil {
			return fmt.Errorf("wal: sync log: %w", err)
		}
	}
	l.w = writerState{f: f, off: res.end, alloc: res.end + res.zeros, header: res.header,
		limit: min(l.opts.MaxRecordSize, int(res.header.maxRecord))}
	l.firstSeq.Store(res.header.baseSeq)
	l.nextSeq.Store(res.next)
	l.written.Store(res.next - 1)
	l.durable.Store(res.next - 1)
	l.size.Store(res.end)
	return nil
}

// Write appends a batch of records with consecutive seqs and returns the
// first and last. The batch is written whole or not at all. It does not
// wait for durability: see WaitDurable. A failed or short write leaves the
// log failed.
func (l *Log) Write(payloads [][]byte) (first, last uint64, err error) {
	if len(payloads) == 0 {
		return 0, 0, errors.New("wal: write: empty batch")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return 0, 0, err
	}
	for i, p := range payloads {
		if err := checkRecordSize(int64(len(p)), l.w.limit); err != nil {
			return 0, 0, fmt.Errorf("record %d of the batch: %w", i, err)
		}
	}

	first = l.nextSeq.Load()
	buf := l.w.buf[:0]
	for i, p := range payloads {
		buf = appendRecord(buf, first+uint64(i), p)
	}
	last = first + uint64(len(payloads)) - 1
	if n, err := l.w.f.WriteAt(buf, l.w.off); err != nil {
		return 0, 0, l.failWriteLocked(fmt.Errorf("write log: %w", err), n)
	}
	if err := l.dualWriteLocked(buf, first, payloads); err != nil {
		return 0, 0, l.failWriteLocked(fmt.Errorf("write new log: %w", err), len(buf))
	}

	l.w.off += int64(len(buf))
	if cap(buf) <= 1<<20 {
		l.w.buf = buf
	}
	if l.w.off >= l.w.alloc {
		l.preallocateLocked()
	}
	l.size.Store(l.w.off)
	l.nextSeq.Store(last + 1)
	l.written.Store(last)
	l.commit.kick()
	return first, last, nil
}

// preallocBytes is how far ahead of its records the log file is filled
// with zeros. An fdatasync after an append that grew the file must also
// write the file's size (on ext4, a journal commit): about twice the time
// of one that overwrites bytes already there.
const preallocBytes = 1 << 20

var zeros [preallocBytes]byte

// preallocateLocked lays preallocBytes of zeros after the last record. A
// reader takes zeros to the end of the file for the end of the log.
// A failed or short write of zeros costs only speed: the file is as long
// as the bytes that reached it, and the next Write tries again.
func (l *Log) preallocateLocked() {
	if l.opts.Sync == SyncNone {
		return
	}
	n, _ := l.w.f.WriteAt(zeros[:], l.w.off)
	l.w.alloc = l.w.off + int64(n)
}

func (l *Log) usableLocked() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if err := l.failure.Load(); err != nil {
		return err
	}
	return nil
}

// failWriteLocked fails the log after a failed or short write of n bytes
// and tries to cut the partial record; if that fails too, the torn tail is
// cut at the next Open.
func (l *Log) failWriteLocked(cause error, n int) error {
	err := l.fail(cause)
	if n > 0 {
		if l.w.f.Truncate(l.w.off) == nil {
			l.w.alloc = l.w.off
		}
	}
	l.commit.kick()
	return err
}

// dualWriteLocked copies the records of a batch with seq >= dualBase to
// the new file of a running truncation. NB: its failure fails the log:
// once the new file may have been renamed over the log, it must hold every
// record that can be answered.
func (l *Log) dualWriteLocked(buf []byte, first uint64, payloads [][]byte) error {
	if l.w.dual == nil {
		return nil
	}
	skip := 0
	for i := 0; i < len(payloads) && first+uint64(i) < l.w.dualBase; i++ {
		skip += recordHeaderSize + len(payloads[i])
	}
	if skip == len(buf) {
		return nil
	}
	if _, err := l.w.dual.WriteAt(buf[skip:], l.w.dualOff); err != nil {
		return err
	}
	l.w.dualOff += int64(len(buf) - skip)
	return nil
}

// fail makes the log read-only for good and returns the error every later
// call gets. The first cause wins.
func (l *Log) fail(cause error) error {
	l.failure.CompareAndSwap(nil, &failedError{cause: cause})
	return l.failure.Load()
}

// failSync is fail for a failed fsync: nothing is fsync'd again.
func (l *Log) failSync(cause error) error {
	l.syncFailed.Store(true)
	return l.fail(cause)
}

// WaitDurable returns once every record up to seq is durable under the
// sync mode: fdatasync'd under SyncAlways, written under the others. It
// returns the log's failure if that fsync failed.
func (l *Log) WaitDurable(seq uint64) error {
	for {
		if seq <= l.durable.Load() {
			return nil
		}
		if seq > l.written.Load() {
			if err := l.Err(); err != nil {
				return err
			}
			if l.closed.Load() {
				return ErrClosed
			}
			return fmt.Errorf("wal: wait for seq %d: not written, next seq is %d",
				seq, l.nextSeq.Load())
		}
		if l.opts.Sync != SyncAlways {
			return nil
		}
		if l.syncFailed.Load() {
			return l.Err()
		}
		if err := l.commit.wait(seq); err != nil {
			// The last round at Close may have covered seq.
			if seq <= l.durable.Load() {
				return nil
			}
			return err
		}
	}
}

// Append is Write followed by WaitDurable of the last record.
func (l *Log) Append(payloads [][]byte) (first, last uint64, err error) {
	first, last, err = l.Write(payloads)
	if err != nil {
		return 0, 0, err
	}
	if err := l.WaitDurable(last); err != nil {
		return 0, 0, err
	}
	return first, last, nil
}

// FirstSeq returns the seq of the first record held; NextSeq when empty.
func (l *Log) FirstSeq() uint64 { return l.firstSeq.Load() }

// NextSeq returns the seq the next Write gets.
func (l *Log) NextSeq() uint64 { return l.nextSeq.Load() }

// DurableSeq returns the seq of the last record known durable: fdatasync'd
// under SyncAlways and SyncInterval, written under SyncNone.
func (l *Log) DurableSeq() uint64 {
	if l.opts.Sync == SyncNone {
		return l.written.Load()
	}
	return l.durable.Load()
}

// Processed returns the processed seq: the last one applied to the state.
// It takes no lock.
func (l *Log) Processed() uint64 { return l.processed.Load() }

// SetProcessed sets the processed seq. It takes no lock.
func (l *Log) SetProcessed(seq uint64) { l.processed.Store(seq) }

// Size returns the log file's size in bytes.
func (l *Log) Size() int64 { return l.size.Load() }

// Err returns nil, or the failure that made the log read-only; it matches
// ErrFailed and the cause.
func (l *Log) Err() error {
	if err := l.failure.Load(); err != nil {
		return err
	}
	return nil
}

// Replay calls fn for every record with seq >= from, in order, up to the
// last record written when Replay started. The payload is valid only
// during fn, and fn must not call TruncateBefore or Close. The caller
// checks that FirstSeq() <= from when it needs every record from there on.
func (l *Log) Replay(from uint64, fn func(seq uint64, payload []byte) error) error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.mu.Lock()
	f, end := l.w.f, l.w.off
	l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	_, err := scanFile(f, l.path, end, func(seq uint64, _ int64, p []byte) error {
		if seq < from {
			return nil
		}
		return fn(seq, p)
	})
	return err
}

// Close syncs what was written (unless the mode is SyncNone), stops the
// flusher and closes the file. It waits for a running truncation.
func (l *Log) Close() error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed.Store(true)
	l.mu.Unlock()

	l.commit.stop()
	terr := l.trimLocked()
	err := l.w.f.Close()
	if ferr := l.Err(); ferr != nil {
		return ferr
	}
	if terr != nil {
		return terr
	}
	if err != nil {
		return fmt.Errorf("wal: close: %w", err)
	}
	return nil
}

// trimLocked cuts the zeros laid ahead of the records, so that a log
// closed cleanly ends at its last record; after a crash, Open finds them
// and writes over them. Under Close, with no writer left.
func (l *Log) trimLocked() error {
	if l.w.alloc <= l.w.off || l.Err() != nil {
		return nil
	}
	err := l.w.f.Truncate(l.w.off)
	if err == nil && l.opts.Sync != SyncNone {
		err = l.w.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("wal: cut the zeros after the last record: %w", err)
	}
	l.w.alloc = l.w.off
	return nil
}

// ScanInfo describes a log file as Scan found it.
type ScanInfo struct {
	File     string
	FirstSeq uint64
	NextSeq  uint64
	Records  int
	Size     int64
	// TornOffset is the offset of a torn last record, or -1; Open would
	// cut it there. TornReason says what was wrong with it.
	TornOffset int64
	TornReason string
	// Zeros counts the zero bytes after the last record: those a running
	// log lays ahead of its records (a clean Close cuts them). They are
	// no damage.
	Zeros int64
}

// Scan reads the log in dir without modifying anything and calls fn for
// every sound record with its offset. It reports a torn last record in the
// ScanInfo and returns a *CorruptionError for any other damage, with the
// ScanInfo filled up to it.
func Scan(fsys vfs.FS, dir string,
	fn func(seq uint64, offset int64, payload []byte) error) (ScanInfo, error) {
	name := path.Join(dir, fileName)
	info := ScanInfo{File: name, TornOffset: -1}
	f, err := fsys.Open(name)
	if err != nil {
		return info, fmt.Errorf("wal: open log: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return info, fmt.Errorf("wal: size of log: %w", err)
	}
	info.Size = size

	res, err := scanFile(f, name, size, fn)
	info.FirstSeq, info.NextSeq, info.Records = res.header.baseSeq, res.next, res.records
	info.TornOffset, info.TornReason, info.Zeros = res.tornOff, res.tornReason, res.zeros
	return info, err
}
