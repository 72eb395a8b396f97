package wal

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

// Tuning of a truncation's copy passes.
const (
	// catchUpBytes: once less than this was appended since the last pass,
	// the passes without the lock stop.
	catchUpBytes = 64 << 10
	// maxCatchUp bounds the passes if writers outrun them.
	maxCatchUp = 16
	copyChunk  = 1 << 20
	// syncEvery paces the copy with an fsync of the new file: it keeps the
	// dirty data small, so that the writers' fsyncs, which on ext4 may have
	// to wait for other files' allocated data, do not queue behind it.
	syncEvery = 8 << 20
)

// TruncateBefore drops the records with seq < seq. On an empty log, or when
// seq > NextSeq(), it also moves NextSeq up to seq, durably: this is how a
// log is based after a snapshot at S (TruncateBefore(S+1)).
//
// The records kept are copied to a temporary file without the log's lock.
// The lock is taken only to switch writers to writing both files and, at
// the end, to swap the handle; neither does I/O. Writers carry on
// throughout; see the package comment for why no answered record is lost.
func (l *Log) TruncateBefore(seq uint64) error {
	return l.truncate(seq, false)
}

// truncation is the state of one TruncateBefore.
type truncation struct {
	l      *Log
	base   uint64
	header fileHeader
	src    vfs.File
	tmp    vfs.File
	// tmpOff is where the next copied byte goes in tmp.
	tmpOff int64
	// r reads record headers of src to find the first record kept.
	r reader
	// scanPos is how far records of src were examined while startOff is
	// -1; startOff is the offset of the first record kept; copied is how
	// far src was copied to tmp from startOff on.
	scanPos  int64
	startOff int64
	copied   int64
	unsynced int64
	buf      []byte
}

// truncate runs a truncation; force rewrites the log even when seq drops
// nothing (to renew the header).
func (l *Log) truncate(seq uint64, force bool) error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()

	held := l.lockTimed()
	err := l.usableLocked()
	src, end, hdr := l.w.f, l.w.off, l.w.header
	l.unlockTimed(held)
	if err != nil {
		return err
	}
	first := l.firstSeq.Load()
	if seq <= first && !force {
		return nil
	}
	t := &truncation{l: l, base: max(seq, first), src: src,
		scanPos: fileHeaderSize, startOff: -1, buf: make([]byte, copyChunk)}
	t.r = reader{f: src, name: l.path}
	t.header = fileHeader{version: FormatVersion, baseSeq: t.base,
		maxRecord: max(uint32(l.opts.MaxRecordSize), hdr.maxRecord)}

	// Steps 1 and 2: bulk copy and catch-up passes, fsync.
	if err := t.begin(); err != nil {
		return t.abort(err)
	}
	if err := t.copyTo(end); err != nil {
		return t.abort(err)
	}
	if err := t.catchUp(); err != nil {
		return t.abort(err)
	}
	if err := t.tmp.Sync(); err != nil {
		return t.abort(err)
	}

	// Steps 3 and 4: dual writes from the current end on; copy the gap
	// before it and fsync, without the lock.
	dualStart, err := t.startDual()
	if err != nil {
		return t.abort(err)
	}
	if err := t.copyTo(dualStart); err != nil {
		return t.abort(err)
	}
	if err := t.tmp.Sync(); err != nil {
		return t.abort(err)
	}
	return t.finish()
}

// finish renames the new file over the log, swaps the handle and fsyncs
// the directory: steps 5 and 6.
func (t *truncation) finish() error {
	l := t.l
	// NB: a failure racing past this check is harmless: the new file
	// holds what the old one does, as dual writes stop only with the log.
	if err := l.Err(); err != nil {
		return t.abort(err)
	}
	if err := l.fs.Rename(l.tmp, l.path); err != nil {
		return t.abort(err)
	}
	gen := t.swap()

	// Records written after the swap are answered only once the
	// directory holds the rename (see syncRound); so is this call.
	var err error
	if !l.syncFailed.Load() {
		if serr := l.syncDir(gen); serr != nil {
			err = l.failSync(fmt.Errorf("sync dir after truncation: %w", serr))
		}
	}
	l.flushMu.Lock()
	// NB: an error closing a handle that is no longer used loses nothing.
	_ = t.src.Close()
	l.flushMu.Unlock()
	if err != nil {
		return err
	}
	if err := l.Err(); err != nil {
		return err
	}
	storeMax(&l.durable, t.base-1)
	return nil
}

// lockTimed takes mu for the truncation and returns when it got it.
func (l *Log) lockTimed() time.Time {
	l.mu.Lock()
	return time.Now()
}

// unlockTimed releases mu and reports how long it was held.
func (l *Log) unlockTimed(since time.Time) {
	d := time.Since(since)
	l.mu.Unlock()
	if l.opts.OnTruncateLock != nil {
		l.opts.OnTruncateLock(d)
	}
}

// begin creates the temporary file and writes its header.
func (t *truncation) begin() error {
	f, err := t.l.fs.Create(t.l.tmp)
	if err != nil {
		return err
	}
	t.tmp = f
	b := encodeFileHeader(t.header)
	n, err := f.WriteAt(b, 0)
	t.tmpOff += int64(n)
	return err
}

// pos is how far src has been dealt with.
func (t *truncation) pos() int64 {
	if t.startOff < 0 {
		return t.scanPos
	}
	return t.copied
}

// findStart looks for the first record kept among the records of src up
// to to, which are complete and sound.
func (t *truncation) findStart(to int64) error {
	t.r.end = to
	for t.startOff < 0 && t.scanPos < to {
		b, err := t.r.at(t.scanPos, recordHeaderSize)
		if err != nil {
			return err
		}
		h := decodeRecordHeader(b)
		if h.seq >= t.base {
			t.startOff, t.copied = t.scanPos, t.scanPos
			break
		}
		t.scanPos += recordHeaderSize + int64(h.length)
	}
	return nil
}

// copyTo copies the records kept of src up to to into tmp.
func (t *truncation) copyTo(to int64) error {
	if err := t.findStart(to); err != nil || t.startOff < 0 {
		return err
	}
	for t.copied < to {
		n := int(min(int64(len(t.buf)), to-t.copied))
		m, err := t.src.ReadAt(t.buf[:n], t.copied)
		if m < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read log at %d: %w", t.copied, err)
		}
		w, err := t.tmp.WriteAt(t.buf[:n], t.tmpOff)
		t.tmpOff += int64(w)
		if err != nil {
			return err
		}
		t.copied += int64(n)
		t.unsynced += int64(n)
		if t.unsynced >= syncEvery {
			t.unsynced = 0
			if err := t.tmp.Sync(); err != nil {
				return err
			}
		}
	}
	return nil
}

// catchUp copies what was appended during the bulk copy, in passes, until
// a pass finds little new.
func (t *truncation) catchUp() error {
	for range maxCatchUp {
		held := t.l.lockTimed()
		end := t.l.w.off
		t.l.unlockTimed(held)
		if end-t.pos() <= catchUpBytes {
			return nil
		}
		if err := t.copyTo(end); err != nil {
			return err
		}
	}
	return nil
}

// startDual makes every write from the log's current end on go to the new
// file too, at the offset it will have there once the gap before it is
// copied. It returns that end. It does no I/O under the lock unless the
// first record kept is still to be found (a log based past its end).
func (t *truncation) startDual() (int64, error) {
	l := t.l
	held := l.lockTimed()
	defer l.unlockTimed(held)
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	end := l.w.off
	if err := t.findStart(end); err != nil {
		return 0, err
	}
	gap := int64(0)
	if t.startOff >= 0 {
		gap = end - t.copied
	}
	l.w.dual, l.w.dualBase, l.w.dualOff = t.tmp, t.base, t.tmpOff+gap
	return end, nil
}

// swap makes the new file, already renamed over the log, the log's file.
// It returns the rename's generation.
func (t *truncation) swap() uint64 {
	l := t.l
	held := l.lockTimed()
	defer l.unlockTimed(held)
	l.w.f, l.w.off, l.w.header = t.tmp, l.w.dualOff, t.header
	l.w.alloc = l.w.off
	l.w.limit = min(l.opts.MaxRecordSize, int(t.header.maxRecord))
	l.w.dual = nil
	l.w.dirGen++
	if l.nextSeq.Load() < t.base {
		l.nextSeq.Store(t.base)
		l.written.Store(t.base - 1)
	}
	l.firstSeq.Store(t.base)
	l.size.Store(l.w.off)
	return l.w.dirGen
}

// abort ends a truncation that did not rename: it stops the dual writes
// and removes the new file. The log is as it was.
func (t *truncation) abort(cause error) error {
	l := t.l
	l.flushMu.Lock()
	l.mu.Lock()
	if t.tmp != nil && l.w.dual == t.tmp {
		l.w.dual = nil
	}
	l.mu.Unlock()
	if t.tmp != nil {
		_ = t.tmp.Close()
	}
	l.flushMu.Unlock()
	if t.tmp != nil {
		_ = l.fs.Remove(l.tmp)
	}
	return fmt.Errorf("wal: truncate before %d: %w", t.base, cause)
}
