package wal

import (
	"errors"
	"fmt"
	"io"
)

// readChunk is how much the reader reads ahead; it never reads past the
// end it was given.
const readChunk = 1 << 20

// reader reads a log file through one window buffer. It never allocates
// more than the bytes the file holds past the offset it was asked for, so a
// damaged length field cannot make it allocate beyond the file's size.
type reader struct {
	f    io.ReaderAt
	name string
	// end is the offset reading stops at: the file's size, or the end of
	// the last complete record for a live log.
	end int64

	buf    []byte
	bufOff int64
	// maxAlloc is the largest buffer allocated, for tests.
	maxAlloc int
}

// at returns the n bytes at off. The caller ensures off+n <= r.end. The
// bytes are valid until the next call.
func (r *reader) at(off int64, n int) ([]byte, error) {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		i := off - r.bufOff
		return r.buf[i : i+int64(n)], nil
	}
	want := int64(max(n, readChunk))
	want = min(want, r.end-off)
	if want < int64(n) {
		return nil, fmt.Errorf("read %s at %d: %d bytes past the end", r.name, off, n)
	}
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
		r.maxAlloc = max(r.maxAlloc, int(want))
	}
	r.buf = r.buf[:want]
	m, err := r.f.ReadAt(r.buf, off)
	if int64(m) < want {
		r.buf = r.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s at %d: %w", r.name, off, err)
	}
	r.bufOff = off
	return r.buf[:n], nil
}

// drop forgets the window, so that the next read goes to the file.
func (r *reader) drop() { r.buf = r.buf[:0] }

// record is one record as read from the file.
type record struct {
	seq     uint64
	payload []byte
	// next is the offset just past the record.
	next int64
}

// read decodes the record at off. A record that is not sound gives a
// non-empty reason and the kind of the damage; err is for I/O errors only.
func (r *reader) read(off int64, limit int) (rec record, reason, kind string, err error) {
	left := r.end - off
	if left < recordHeaderSize {
		return rec, fmt.Sprintf("short header: %d bytes left", left), KindLength, nil
	}
	b, err := r.at(off, recordHeaderSize)
	if err != nil {
		return rec, "", "", err
	}
	h := decodeRecordHeader(b)
	if err := checkRecordSize(int64(h.length), limit); err != nil {
		return rec, fmt.Sprintf("length %d over the limit %d", h.length, limit), KindLength, nil
	}
	if int64(h.length) > left-recordHeaderSize {
		return rec, fmt.Sprintf("short payload: length %d, %d bytes left",
			h.length, left-recordHeaderSize), KindLength, nil
	}
	b, err = r.at(off, recordHeaderSize+int(h.length))
	if err != nil {
		return rec, "", "", err
	}
	if sum := recordSum(b, b[recordHeaderSize:]); sum != h.crc {
		return rec, fmt.Sprintf("checksum %08x, stored %08x", sum, h.crc), KindChecksum, nil
	}
	rec = record{seq: h.seq, payload: b[recordHeaderSize:],
		next: off + recordHeaderSize + int64(h.length)}
	return rec, "", "", nil
}

// soundAt reports whether a record with a valid checksum and a non-zero
// seq starts at off.
func (r *reader) soundAt(off int64, limit int) (bool, error) {
	if r.end-off < recordHeaderSize {
		return false, nil
	}
	b, err := r.at(off, recordHeaderSize)
	if err != nil {
		return false, err
	}
	// Cheap rejections first: zero-filled and garbage tails are mostly
	// seq 0 or a length past the end.
	h := decodeRecordHeader(b)
	if h.seq == 0 || int64(h.length) > min(int64(limit), r.end-off-recordHeaderSize) {
		return false, nil
	}
	rec, reason, _, err := r.read(off, limit)
	return err == nil && reason == "" && rec.seq != 0, err
}

// findSound returns the first offset at or after from where a sound record
// starts, or -1.
func (r *reader) findSound(from int64, limit int) (int64, error) {
	for p := from; p+recordHeaderSize <= r.end; p++ {
		ok, err := r.soundAt(p, limit)
		if err != nil {
			return -1, err
		}
		if ok {
			return p, nil
		}
	}
	return -1, nil
}

// zeroFrom reports whether every byte from off to the end is zero.
func (r *reader) zeroFrom(off int64) (bool, error) {
	for off < r.end {
		n := int(min(int64(readChunk), r.end-off))
		b, err := r.at(off, n)
		if err != nil {
			return false, err
		}
		for _, c := range b {
			if c != 0 {
				return false, nil
			}
		}
		off += int64(n)
	}
	return true, nil
}

// scanResult is what a scan of a log file found.
type scanResult struct {
	header fileHeader
	// end is the offset just past the last sound record.
	end     int64
	next    uint64
	records int
	// tornOff is the offset of a torn last record, or -1.
	tornOff    int64
	tornReason string
	// zeros counts the zero bytes from end to the end of the file: those
	// the writer lays ahead of its records, which are no damage.
	zeros    int64
	maxAlloc int
}

// scanFile checks a whole log file and calls fn for every sound record. A
// bad record counts as the torn tail only when no sound record starts
// anywhere after it; otherwise scanFile returns a *CorruptionError.
func scanFile(f io.ReaderAt, name string, size int64,
	fn func(seq uint64, off int64, payload []byte) error) (res scanResult, err error) {
	r := &reader{f: f, name: name, end: size}
	res.tornOff = -1
	defer func() { res.maxAlloc = r.maxAlloc }()

	if size < fileHeaderSize {
		return res, &CorruptionError{File: name, Offset: 0, Kind: KindHeader,
			Err: fmt.Errorf("file header: %d bytes, want %d", size, fileHeaderSize)}
	}
	b, err := r.at(0, fileHeaderSize)
	if err != nil {
		return res, err
	}
	h, err := decodeFileHeader(b)
	if err != nil {
		return res, &CorruptionError{File: name, Offset: 0, Kind: KindHeader, Err: err}
	}
	res.header, res.end, res.next = h, fileHeaderSize, h.baseSeq
	limit := int(h.maxRecord)

	for off := int64(fileHeaderSize); off < size; {
		rec, reason, kind, err := r.read(off, limit)
		if err == nil && reason != "" {
			// The window may have been read before a running log's
			// writer put records over its zeros: decide on bytes read
			// from off now, so that the classification does not mix
			// zeros seen then with records seen later.
			r.drop()
			rec, reason, kind, err = r.read(off, limit)
		}
		if err != nil {
			return res, err
		}
		if reason != "" {
			return res, r.classify(&res, off, reason, kind, limit)
		}
		if rec.seq != res.next {
			return res, &CorruptionError{File: name, Offset: off, Kind: KindSequence,
				Err: fmt.Errorf("seq %d, want %d", rec.seq, res.next)}
		}
		if fn != nil {
			if err := fn(rec.seq, off, rec.payload); err != nil {
				return res, err
			}
		}
		res.next++
		res.records++
		off, res.end = rec.next, rec.next
	}
	return res, nil
}

// classify decides whether the bad record at off is the zeros laid ahead
// of the records (every byte from off on is zero), the torn tail (nothing
// sound follows it) or damage, and records the first two in res.
func (r *reader) classify(res *scanResult, off int64, reason, kind string, limit int) error {
	zero, err := r.zeroFrom(off)
	if err != nil {
		return err
	}
	if zero {
		res.zeros = r.end - off
		return nil
	}
	p, err := r.findSound(off+1, limit)
	if err != nil {
		return err
	}
	if p >= 0 {
		return &CorruptionError{File: r.name, Offset: off, Kind: kind,
			Err: fmt.Errorf("%s; a sound record follows at offset %d", reason, p)}
	}
	res.tornOff, res.tornReason = off, reason
	return nil
}
