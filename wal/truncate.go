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
	// the rest is copied under the lock.
	catchUpBytes = 64 << 10
	// maxCatchUp bounds the passes without the lock; if writers outrun
	// them, the last pass copies more under the lock.
	maxCatchUp = 16
	copyChunk  = 1 << 20
)

// TruncateBefore drops the records with seq < seq. On an empty log, or when
// seq > NextSeq(), it also moves NextSeq up to seq, durably: this is how a
// log is based after a snapshot at S (TruncateBefore(S+1)).
//
// The records kept are copied to a temporary file without the log's lock;
// the lock is taken only to copy what was appended meanwhile and, later,
// for the rename over the log and the swap of the handle. Writers carry on
// throughout; see the package comment for how no answered record is lost.
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
	tmpOff int64
	// r reads record headers of src to find the first record kept.
	r reader
	// scanPos is how far records of src were examined while startOff is
	// -1; startOff is the offset of the first record kept; copied is how
	// far src was copied to tmp from startOff on.
	scanPos  int64
	startOff int64
	copied   int64
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

	// Bulk copy and catch-up passes, without the lock.
	if err := t.begin(); err != nil {
		return t.abort(err)
	}
	if err := t.advance(end); err != nil {
		return t.abort(err)
	}
	if err := t.catchUp(); err != nil {
		return t.abort(err)
	}
	if err := t.tmp.Sync(); err != nil {
		return t.abort(err)
	}

	// Under the lock: the small rest, then every later write goes to both
	// files. The fsync that makes the rest durable runs without the lock.
	if err := t.startDual(); err != nil {
		return t.abort(err)
	}
	if err := t.tmp.Sync(); err != nil {
		return t.abort(err)
	}
	gen, err := t.swap()
	if err != nil {
		return err
	}

	// Records written after the swap are answered only once the
	// directory holds the rename (see syncRound); so is this call.
	if err := l.syncDir(gen); err != nil {
		return l.failSync(fmt.Errorf("sync dir after truncation: %w", err))
	}
	storeMax(&l.durable, t.base-1)
	l.flushMu.Lock()
	// NB: an error closing a handle that is no longer used loses nothing.
	_ = src.Close()
	l.flushMu.Unlock()
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
	n, err := f.Write(b)
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

// advance deals with src up to to: it looks for the first record kept and
// copies from there on. Records of src up to to are complete and sound.
func (t *truncation) advance(to int64) error {
	if t.startOff < 0 {
		t.r.end = to
		for t.scanPos < to {
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
		if t.startOff < 0 {
			return nil
		}
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
		w, err := t.tmp.Write(t.buf[:n])
		t.tmpOff += int64(w)
		if err != nil {
			return err
		}
		t.copied += int64(n)
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
		if err := t.advance(end); err != nil {
			return err
		}
	}
	return nil
}

// startDual copies the rest under the lock and makes every later write go
// to the new file too.
func (t *truncation) startDual() error {
	l := t.l
	held := l.lockTimed()
	defer l.unlockTimed(held)
	if err := l.usableLocked(); err != nil {
		return err
	}
	if err := t.advance(l.w.off); err != nil {
		return err
	}
	l.w.dual, l.w.dualBase, l.w.dualOff, l.w.dualErr = t.tmp, t.base, t.tmpOff, nil
	return nil
}

// swap renames the new file over the log and makes it the log's file,
// under the lock. It returns the rename's generation. Before the rename
// an error aborts the truncation; after it the new file is the log.
func (t *truncation) swap() (uint64, error) {
	l := t.l
	held := l.lockTimed()
	err := l.usableLocked()
	if err == nil {
		err = l.w.dualErr
	}
	if err == nil {
		err = l.fs.Rename(l.tmp, l.path)
	}
	if err != nil {
		l.unlockTimed(held)
		return 0, t.abort(err)
	}

	l.w.f, l.w.off, l.w.header = t.tmp, l.w.dualOff, t.header
	l.w.limit = min(l.opts.MaxRecordSize, int(t.header.maxRecord))
	l.w.dual, l.w.dualErr = nil, nil
	l.w.dirGen++
	gen := l.w.dirGen
	if l.nextSeq.Load() < t.base {
		l.nextSeq.Store(t.base)
		l.written.Store(t.base - 1)
	}
	l.firstSeq.Store(t.base)
	l.size.Store(l.w.off)
	l.unlockTimed(held)
	return gen, nil
}

// abort ends a truncation that did not rename: it stops the copy to the
// new file and removes it. The log is as it was.
func (t *truncation) abort(cause error) error {
	l := t.l
	l.flushMu.Lock()
	l.mu.Lock()
	if t.tmp != nil && l.w.dual == t.tmp {
		l.w.dual, l.w.dualErr = nil, nil
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
