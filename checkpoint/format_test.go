package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		meta Meta
		body []byte
	}{
		{"empty body, no counts", Meta{Seq: 0, Counts: map[string]uint64{}}, nil},
		{"small", testMeta(7), testBody(7, 100)},
		{"one chunk", testMeta(8), testBody(8, 200_000)},
		{"many chunks", testMeta(9), append(testBody(9, 100_000), randomBytes(1_200_000)...)},
		{"incompressible", testMeta(10), randomBytes(300_000)},
		{"max seq", Meta{Seq: ^uint64(0), Time: time.Unix(1, 1).UTC(),
			Counts: map[string]uint64{strings.Repeat("n", 255): ^uint64(0)}}, []byte("x")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeBytes(t, tc.meta, tc.body)
			meta, body, err := decodeBytes(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(meta, tc.meta) {
				t.Fatalf("meta %+v, want %+v", meta, tc.meta)
			}
			if !bytes.Equal(body, tc.body) {
				t.Fatalf("body of %d bytes differs from the %d written", len(body), len(tc.body))
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	var x uint64 = 88172645463325252
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestEncodeRefusesBadMeta(t *testing.T) {
	cases := map[string]Meta{
		"empty count name":  {Counts: map[string]uint64{"": 1}},
		"long count name":   {Counts: map[string]uint64{strings.Repeat("n", 256): 1}},
		"time out of range": {Time: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)},
		"huge meta": {Counts: func() map[string]uint64 {
			c := map[string]uint64{}
			for i := range 400 {
				c[strings.Repeat("x", 200)+string(rune('a'+i%26))+strings.Repeat("y", i)[:i%50]] = 1
			}
			return c
		}()},
	}
	for name, meta := range cases {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if _, err := Encode(&b, meta, writeBody(nil)); err == nil {
				t.Fatal("Encode accepted it")
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	errBody := errors.New("state walk failed")
	_, err := Encode(io.Discard, testMeta(1), func(io.Writer) error { return errBody })
	if !errors.Is(err, errBody) {
		t.Fatalf("body error: got %v", err)
	}

	errDisk := errors.New("disk full")
	w := &failWriter{after: 100, err: errDisk}
	_, err = Encode(w, testMeta(1), writeBody(randomBytes(1_000_000)))
	if !errors.Is(err, errDisk) {
		t.Fatalf("writer error: got %v", err)
	}
}

// failWriter accepts after bytes, then fails every write.
type failWriter struct {
	after int
	err   error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) <= w.after {
		w.after -= len(p)
		return len(p), nil
	}
	n := w.after
	w.after = 0
	return n, w.err
}

// snapshotLayout locates the parts of a snapshot for the damage table.
type snapshotLayout struct {
	hdrLen  int   // header length, CRC included
	chunks  []int // offsets of the chunk headers
	trailer int   // offset of the trailer
}

func layout(t *testing.T, data []byte) snapshotLayout {
	t.Helper()
	m := int(binary.LittleEndian.Uint32(data[12:]))
	l := snapshotLayout{hdrLen: fixedLen + m + 4}
	off := l.hdrLen
	for {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n == 0 {
			l.trailer = off
			return l
		}
		l.chunks = append(l.chunks, off)
		off += chunkHeaderLen + n
	}
}

// resealTrailer recomputes the trailer's own CRC after a test edited it.
func resealTrailer(data []byte, off int) {
	crc := crc32.Checksum(data[off:off+28], castagnoli)
	binary.LittleEndian.PutUint32(data[off+28:], crc)
}

func TestDecodeDamage(t *testing.T) {
	body := randomBytes(700_000) // incompressible: several chunks
	good := encodeBytes(t, testMeta(5), body)
	l := layout(t, good)
	if len(l.chunks) < 2 {
		t.Fatalf("want several chunks, got %d", len(l.chunks))
	}

	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		kind   string
		offset int
		is     error
	}{
		{"magic", func(b []byte) []byte { b[1] = 'X'; return b }, kindMagic, 0, nil},
		{"meta length too large", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], maxMetaLen+1)
			return b
		}, kindHeaderLen, 12, nil},
		{"meta length too small", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 3)
			return b
		}, kindHeaderLen, 12, nil},
		{"seq bit flip", func(b []byte) []byte { b[17] ^= 1; return b }, kindHeaderCRC,
			l.hdrLen - 4, ErrChecksum},
		{"version", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[8:], 2)
			resealHeader(b, l.hdrLen)
			return b
		}, kindVersion, 8, ErrUnsupportedVersion},
		{"first chunk payload", func(b []byte) []byte { b[l.chunks[0]+20] ^= 0x40; return b },
			kindChunkCRC, l.chunks[0], ErrChecksum},
		{"second chunk payload", func(b []byte) []byte { b[l.chunks[1]+9] ^= 1; return b },
			kindChunkCRC, l.chunks[1], ErrChecksum},
		{"chunk length", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[l.chunks[1]:], maxChunk+1)
			return b
		}, kindChunkLen, l.chunks[1], nil},
		{"chunks swapped", func(b []byte) []byte {
			return swapChunks(b, l)
		}, kindCompressed, l.chunks[0], nil},
		{"body CRC in trailer", func(b []byte) []byte {
			b[l.trailer+24] ^= 1
			resealTrailer(b, l.trailer)
			return b
		}, kindBodyCRC, l.trailer, ErrChecksum},
		{"trailer bit flip", func(b []byte) []byte { b[l.trailer+9] ^= 1; return b },
			kindTrailerCRC, l.trailer, ErrChecksum},
		{"trailer raw length", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[l.trailer+16:], uint64(len(body)+1))
			resealTrailer(b, l.trailer)
			return b
		}, kindBodyLen, l.trailer, nil},
		{"trailer chunk count", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[l.trailer+4:], uint32(len(l.chunks)+1))
			resealTrailer(b, l.trailer)
			return b
		}, kindBodyLen, l.trailer, nil},
		{"trailing data", func(b []byte) []byte { return append(b, 0) }, kindTrailingData,
			len(good), nil},
		{"cut in the header", func(b []byte) []byte { return b[:20] }, kindTruncated, 20,
			ErrTruncated},
		{"cut in a chunk", func(b []byte) []byte { return b[:l.chunks[1]+100] },
			kindTruncated, l.chunks[1] + 100, ErrTruncated},
		{"cut before the trailer", func(b []byte) []byte { return b[:l.trailer] },
			kindTruncated, l.trailer, ErrTruncated},
		{"cut in the trailer", func(b []byte) []byte { return b[:len(b)-1] },
			kindTruncated, len(good) - 1, ErrTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.mutate(bytes.Clone(good))
			_, _, err := decodeBytes(data)
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *CorruptionError", err)
			}
			if ce.Kind != tc.kind || ce.Offset != int64(tc.offset) {
				t.Fatalf("got kind %q at %d, want %q at %d (%v)",
					ce.Kind, ce.Offset, tc.kind, tc.offset, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("%v does not wrap %v", err, tc.is)
			}
		})
	}
}

// resealHeader recomputes the header CRC after a test edited the header.
func resealHeader(b []byte, hdrLen int) {
	binary.LittleEndian.PutUint32(b[hdrLen-4:], crc32.Checksum(b[:hdrLen-4], castagnoli))
}

// swapChunks exchanges the first two chunks; each keeps a sound CRC.
func swapChunks(b []byte, l snapshotLayout) []byte {
	c0 := bytes.Clone(b[l.chunks[0]:l.chunks[1]])
	end := l.trailer
	if len(l.chunks) > 2 {
		end = l.chunks[2]
	}
	c1 := bytes.Clone(b[l.chunks[1]:end])
	out := append(bytes.Clone(b[:l.chunks[0]]), c1...)
	out = append(out, c0...)
	return append(out, b[end:]...)
}

func TestEveryCutIsRefused(t *testing.T) {
	good := encodeBytes(t, testMeta(3), testBody(3, 5000))
	for n := 0; n < len(good); n++ {
		_, _, err := decodeBytes(good[:n])
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			t.Fatalf("cut at %d: got %v, want a *CorruptionError", n, err)
		}
	}
}

func TestEveryBitFlipIsRefused(t *testing.T) {
	good := encodeBytes(t, testMeta(3), testBody(3, 300))
	for i := range good {
		for _, bit := range []byte{0x01, 0x80} {
			data := bytes.Clone(good)
			data[i] ^= bit
			_, _, err := decodeBytes(data)
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("flip %#x at %d: got %v, want a *CorruptionError", bit, i, err)
			}
		}
	}
}

// TestDamageAfterFnSucceeded: fn reads only the start of the body and
// returns nil; the damage further on must still fail Decode.
func TestDamageAfterFnSucceeded(t *testing.T) {
	good := encodeBytes(t, testMeta(5), randomBytes(700_000))
	l := layout(t, good)
	data := bytes.Clone(good)
	data[l.chunks[len(l.chunks)-1]+30] ^= 1

	err := Decode(bytes.NewReader(data), func(_ Meta, body io.Reader) error {
		_, err := io.ReadFull(body, make([]byte, 100))
		return err
	})
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Kind != kindChunkCRC {
		t.Fatalf("got %v, want a chunk checksum error", err)
	}
}

// TestDamageWinsOverFnError: fn meets the damage and returns an error of
// its own that does not wrap it; Decode reports the damage.
func TestDamageWinsOverFnError(t *testing.T) {
	good := encodeBytes(t, testMeta(5), randomBytes(700_000))
	l := layout(t, good)
	data := bytes.Clone(good)
	data[l.chunks[1]+30] ^= 1

	err := Decode(bytes.NewReader(data), func(_ Meta, body io.Reader) error {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return errors.New("state decoder: unexpected end")
		}
		return nil
	})
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Kind != kindChunkCRC || ce.Offset != int64(l.chunks[1]) {
		t.Fatalf("got %v, want a chunk checksum error at %d", err, l.chunks[1])
	}
}

func TestFnErrorOnSoundSnapshot(t *testing.T) {
	good := encodeBytes(t, testMeta(5), testBody(5, 1000))
	errFn := errors.New("unknown record type")
	err := Decode(bytes.NewReader(good), func(Meta, io.Reader) error { return errFn })
	if err != errFn {
		t.Fatalf("got %v, want fn's error as it is", err)
	}
}

// TestHugeWindowRefused: a frame that declares a 2 TiB window is refused
// by the zstd decoder without allocating for it.
func TestHugeWindowRefused(t *testing.T) {
	for name, frame := range map[string][]byte{
		"window descriptor": hugeWindowFrame(),
		"content size":      hugeContentFrame(),
	} {
		t.Run(name, func(t *testing.T) { testHostileFrame(t, frame) })
	}
}

func testHostileFrame(t *testing.T, frame []byte) {
	data := frameSnapshot(testMeta(1), frame, 1)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := decodeBytes(data)
	runtime.ReadMemStats(&after)

	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Kind != kindCompressed {
		t.Fatalf("got %v, want a compressed body error", err)
	}
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) && !errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		t.Fatalf("got %v, want the window refused", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("decoding the hostile frame allocated %d bytes", alloc)
	}
}

// TestSoundFrameInHandBuiltSnapshot checks frameSnapshot itself, so that
// the hostile-frame test fails for the frame and not for the framing.
func TestSoundFrameInHandBuiltSnapshot(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := testBody(1, 10_000)
	zst := enc.EncodeAll(body, nil)
	enc.Close()
	_, got, err := decodeBytes(frameSnapshot(testMeta(1), zst, uint64(len(body))))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("hand-built snapshot: err %v, body equal %v", err, bytes.Equal(got, body))
	}
}

// TestChunkLengthNotTrusted: a chunk that claims 1 MiB followed by a few
// bytes costs no more than those bytes.
func TestChunkLengthNotTrusted(t *testing.T) {
	buf, err := growRead(bytes.NewReader(make([]byte, 10)), nil, maxChunk)
	if err == nil || len(buf) != 10 {
		t.Fatalf("growRead: %d bytes, err %v", len(buf), err)
	}
	if cap(buf) > 128<<10 {
		t.Fatalf("growRead allocated %d bytes for 10", cap(buf))
	}
	buf, err = growRead(bytes.NewReader(randomBytes(300_000)), buf, 300_000)
	if err != nil || len(buf) != 300_000 {
		t.Fatalf("growRead: %d bytes, err %v", len(buf), err)
	}
}

func TestCorruptionErrorText(t *testing.T) {
	err := error(&CorruptionError{File: "/d/snap-1.pst", Offset: 42, Kind: kindChunkCRC,
		Err: ErrChecksum})
	want := "checkpoint: snapshot /d/snap-1.pst damaged at offset 42 (chunk checksum): " +
		"checkpoint: checksum mismatch"
	if err.Error() != want {
		t.Fatalf("got %q\nwant %q", err.Error(), want)
	}
	if !errors.Is(err, ErrChecksum) {
		t.Fatal("Unwrap lost the cause")
	}
}

// TestEncodeStreams: the memory Encode takes does not grow with the state,
// so nothing holds a second copy of it.
func TestEncodeStreams(t *testing.T) {
	piece := randomBytes(64 << 10)
	alloc := func(pieces int) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Encode(io.Discard, testMeta(1), func(w io.Writer) error {
			for i := range pieces {
				piece[0] = byte(i) // no two pieces alike
				if _, err := w.Write(piece); err != nil {
					return err
				}
			}
			return nil
		})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(64), alloc(512) // 4 MiB and 32 MiB of state
	if large > small+(2<<20) {
		t.Fatalf("Encode allocated %d bytes for 4 MiB of state, %d for 32 MiB", small, large)
	}
}

// TestDecodeStreams: the memory Decode takes does not grow with the body.
func TestDecodeStreams(t *testing.T) {
	piece := randomBytes(64 << 10)
	alloc := func(pieces int) uint64 {
		var b bytes.Buffer
		_, err := Encode(&b, testMeta(1), func(w io.Writer) error {
			for i := range pieces {
				piece[0] = byte(i)
				if _, err := w.Write(piece); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err = Decode(bytes.NewReader(b.Bytes()), func(_ Meta, body io.Reader) error {
			_, err := io.Copy(io.Discard, body)
			return err
		})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(64), alloc(512)
	if large > small+(2<<20) {
		t.Fatalf("Decode allocated %d bytes for 4 MiB of body, %d for 32 MiB", small, large)
	}
}
