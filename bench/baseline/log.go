package baseline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

const headerSize = 16

// maxRecord bounds a record's payload; a longer length is damage.
const maxRecord = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptionError reports damage in the log or the snapshot.
type CorruptionError struct {
	File   string
	Offset int64
	Kind   string
	Err    error
}

func (e *CorruptionError) Error() string {
	s := fmt.Sprintf("baseline: %s at %s offset %d", e.Kind, e.File, e.Offset)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *CorruptionError) Unwrap() error { return e.Err }

// errTorn marks a record cut short by the end of the input.
var errTorn = errors.New("baseline: torn record")

// appendRecord frames payload as the record for first seq.
func appendRecord(dst []byte, seq uint64, payload []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	crc := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// decodeRecord reads the record at the start of b. It returns errTorn when
// b ends inside the record, and a kind of damage otherwise.
func decodeRecord(b []byte) (seq uint64, payload []byte, n int, kind string, err error) {
	if len(b) < headerSize {
		return 0, nil, 0, "", errTorn
	}
	size := binary.LittleEndian.Uint32(b[0:])
	if size > maxRecord {
		return 0, nil, 0, "record length out of range", nil
	}
	if len(b) < headerSize+int(size) {
		return 0, nil, 0, "", errTorn
	}
	payload = b[headerSize : headerSize+int(size)]
	crc := crc32.Update(crc32.Checksum(b[8:16], castagnoli), castagnoli, payload)
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, "checksum mismatch", nil
	}
	return binary.LittleEndian.Uint64(b[8:]), payload, headerSize + int(size), "", nil
}

// scanRecords calls fn for each record of data and returns the length of
// the sound prefix; a torn last record is left out of it.
func scanRecords(file string, data []byte,
	fn func(off int64, seq uint64, payload []byte) error) (int64, error) {
	var off int64
	for off < int64(len(data)) {
		seq, payload, n, kind, err := decodeRecord(data[off:])
		if errors.Is(err, errTorn) {
			return off, nil
		}
		if kind != "" {
			return off, &CorruptionError{File: file, Offset: off, Kind: kind}
		}
		if err := fn(off, seq, payload); err != nil {
			return off, err
		}
		off += int64(n)
	}
	return off, nil
}

// wlog is the append-only log. mu is the log lock: it guards f and size
// and is held across each write and its fsync.
type wlog struct {
	mu   sync.Mutex
	path string
	f    *os.File
	size int64
	err  error // the first write or sync failure; the log is then failed
	sync bool
}

func openLog(path string, sync bool, fn func(seq uint64, payload []byte) error) (*wlog, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read log: %w", err)
	}
	good, err := scanRecords(path, data, func(_ int64, seq uint64, p []byte) error {
		return fn(seq, p)
	})
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if good < int64(len(data)) {
		// A torn last record: cut it so the next record starts clean.
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("cut torn record: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync log: %w", err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek log: %w", err)
	}
	return &wlog{path: path, f: f, size: good, sync: sync}, nil
}

// writeLocked appends one record and syncs it; the caller holds l.mu.
func (l *wlog) writeLocked(rec []byte) error {
	if l.err != nil {
		return l.err
	}
	if _, err := l.f.Write(rec); err != nil {
		l.err = fmt.Errorf("baseline: write log: %w", err)
		return l.err
	}
	l.size += int64(len(rec))
	if l.sync {
		if err := l.f.Sync(); err != nil {
			l.err = fmt.Errorf("baseline: sync log: %w", err)
			return l.err
		}
	}
	return nil
}

// truncateLocked drops the bytes before off: it copies the rest into a new
// file, syncs it and renames it over the log. The caller holds l.mu for
// all of it; this is the lock hold the design is known for.
func (l *wlog) truncateLocked(off int64) error {
	if l.err != nil {
		return l.err
	}
	tmp := l.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	_, err = io.Copy(nf, io.NewSectionReader(l.f, off, l.size-off))
	if err == nil {
		err = nf.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(l.path))
	}
	if err != nil {
		nf.Close()
		os.Remove(tmp)
		return fmt.Errorf("truncate log: %w", err)
	}
	l.f.Close()
	l.f = nf
	l.size -= off
	return nil
}

func (l *wlog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
