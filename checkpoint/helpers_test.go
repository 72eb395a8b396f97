package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/wal/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const snapDir = "/data/snapshots"

// newMem returns a Mem holding snapDir and /data/wal, durably.
func newMem(t testing.TB) *vfs.Mem {
	t.Helper()
	m := vfs.NewMem()
	for _, d := range []string{snapDir, "/data/wal"} {
		if err := m.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"/", "/data", snapDir, "/data/wal"} {
		if err := m.SyncDir(d); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// testMeta is a meta with a fixed time and a few counts.
func testMeta(seq uint64) Meta {
	return Meta{
		Seq:    seq,
		Time:   time.Date(2026, 12, 4, 16, 30, 0, 123456789, time.UTC),
		Counts: map[string]uint64{"jobs.queued": seq, "jobs.running": 2, "workspaces": 7},
	}
}

// testBody is n deterministic, moderately compressible bytes for seq.
func testBody(seq uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seq, 42))
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "{\"seq\":%d,\"job\":\"job-%06d\",\"step\":%d,\"exit\":%d}\n",
			seq, r.IntN(100000), r.IntN(20), r.IntN(3))
	}
	return b.Bytes()[:n]
}

// writeBody returns an encode callback writing body in pieces of 1000
// bytes, as an encoder walking a state would.
func writeBody(body []byte) func(w io.Writer) error {
	return func(w io.Writer) error {
		for len(body) > 0 {
			k := min(1000, len(body))
			if _, err := w.Write(body[:k]); err != nil {
				return err
			}
			body = body[k:]
		}
		return nil
	}
}

// encodeBytes returns the snapshot of meta and body.
func encodeBytes(t testing.TB, meta Meta, body []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := Encode(&b, meta, writeBody(body))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Fatalf("Encode returned %d bytes, wrote %d", n, b.Len())
	}
	return b.Bytes()
}

// decodeBytes decodes a snapshot, reading the whole body.
func decodeBytes(data []byte) (Meta, []byte, error) {
	var meta Meta
	var body []byte
	err := Decode(bytes.NewReader(data), func(m Meta, r io.Reader) error {
		meta = m
		var err error
		body, err = io.ReadAll(r)
		return err
	})
	return meta, body, err
}

// frameSnapshot wraps raw zstd bytes (possibly hostile) into a snapshot
// whose header, chunks and trailer are all sound, so that only the zstd
// decoder can object.
func frameSnapshot(meta Meta, zst []byte, raw uint64) []byte {
	return frameChunks(meta, zst, raw, writeChunk)
}

// frameChunks is frameSnapshot with chunks of at most size bytes.
func frameChunks(meta Meta, zst []byte, raw uint64, size int) []byte {
	b, err := appendHeader(nil, meta)
	if err != nil {
		panic(err)
	}
	var crc uint32
	var t trailer
	for len(zst) > 0 {
		k := min(len(zst), size)
		var h [chunkHeaderLen]byte
		putChunkHeader(h[:], zst[:k])
		crc = crc32.Update(crc, castagnoli, h[:])
		crc = crc32.Update(crc, castagnoli, zst[:k])
		b = append(append(b, h[:]...), zst[:k]...)
		t.chunks++
		t.packed += uint64(k)
		zst = zst[k:]
	}
	t.raw, t.bodyCRC = raw, crc
	return appendTrailer(b, t)
}

// hugeWindowFrame is a zstd frame whose header declares a 2 TiB window
// (window descriptor exponent 31) followed by one raw block of one byte.
func hugeWindowFrame() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	b = append(b, 0x00)              // frame header descriptor: no FCS, no checksum
	b = append(b, 31<<3)             // window descriptor: windowLog 10+31
	b = append(b, 1<<3|0<<1|1, 0, 0) // last block, raw, size 1
	return append(b, 'x')
}

// hugeContentFrame is a single-segment zstd frame whose header declares
// 1 TiB of content, which is then its window, followed by one raw block.
func hugeContentFrame() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	b = append(b, 3<<6|1<<5) // 8-byte content size, single segment
	b = binary.LittleEndian.AppendUint64(b, 1<<40)
	b = append(b, 1<<3|0<<1|1, 0, 0)
	return append(b, 'x')
}

// fakeLog is a Truncator that records its calls. If fs is set, each
// truncation is made durable there (a file holding the first seq, replaced
// by rename) so that a crash clone of fs also holds the log's state.
type fakeLog struct {
	processed atomic.Uint64
	size      atomic.Int64
	fs        vfs.FS

	mu struct {
		sync.Mutex
		calls []uint64
		err   error                  // returned by TruncateBefore when set
		hook  func(seq uint64) error // run first when set
	}
}

const logFirstFile = "/data/wal/first"

func (l *fakeLog) Processed() uint64 { return l.processed.Load() }
func (l *fakeLog) Size() int64       { return l.size.Load() }

func (l *fakeLog) TruncateBefore(seq uint64) error {
	l.mu.Lock()
	hook, err := l.mu.hook, l.mu.err
	l.mu.calls = append(l.mu.calls, seq)
	l.mu.Unlock()
	if hook != nil {
		if err := hook(seq); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if l.fs != nil {
		return setLogFirst(l.fs, seq)
	}
	return nil
}

func (l *fakeLog) calls() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint64(nil), l.mu.calls...)
}

// setLogFirst records durably that the log starts at seq.
func setLogFirst(fsys vfs.FS, seq uint64) error {
	f, err := fsys.Create(logFirstFile + ".tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(strconv.FormatUint(seq, 10))); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(logFirstFile+".tmp", logFirstFile); err != nil {
		return err
	}
	return fsys.SyncDir("/data/wal")
}

// logFirst reads the log's first seq as setLogFirst left it (1 if never
// truncated).
func logFirst(t testing.TB, m *vfs.Mem) uint64 {
	t.Helper()
	b, err := m.ReadFile(logFirstFile)
	if os.IsNotExist(err) {
		return 1
	}
	if err != nil {
		t.Fatal(err)
	}
	seq, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// state is a published root for the checkpointer tests: a seq and a body
// that is a pure function of it.
type state struct {
	seq  uint64
	body []byte
}

// publisher holds the published root; captures counts Capture calls.
type publisher struct {
	root     atomic.Pointer[state]
	captures atomic.Int64
	// encode, when set, wraps each capture's encode callback.
	encode func(s *state, w io.Writer) error
}

func newPublisher(seq uint64) *publisher {
	p := &publisher{}
	p.publish(seq)
	return p
}

func (p *publisher) publish(seq uint64) {
	p.root.Store(&state{seq: seq, body: testBody(seq, 3000)})
}

func (p *publisher) capture() Capture {
	p.captures.Add(1)
	s := p.root.Load()
	return Capture{
		Meta: testMeta(s.seq),
		Encode: func(w io.Writer) error {
			if p.encode != nil {
				return p.encode(s, w)
			}
			return writeBody(s.body)(w)
		},
	}
}

// readSnapshot reads the file at p and returns its meta and body.
func readSnapshot(t testing.TB, fsys vfs.FS, p string) (Meta, []byte) {
	t.Helper()
	var meta Meta
	var body []byte
	err := Read(fsys, p, func(m Meta, r io.Reader) error {
		meta = m
		var err error
		body, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return meta, body
}

// seqs returns the seqs of the snapshots in dir, newest first.
func seqs(t testing.TB, fsys vfs.FS, dir string) []uint64 {
	t.Helper()
	infos, err := List(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	var s []uint64
	for _, in := range infos {
		s = append(s, in.Seq)
	}
	return s
}
