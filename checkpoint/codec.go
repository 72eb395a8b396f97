package checkpoint

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// encoderLevel is the zstd level of every snapshot. SpeedFastest: on the
// synthetic job state of the benchmarks it compresses as well as
// SpeedDefault (9.5x against 9.1x) at about twice the speed and half the
// memory, and decodes faster (numbers in docs/FORMAT.md); a checkpoint
// shares two cores with the event loop. It is a variable for the
// benchmarks only.
var encoderLevel = zstd.SpeedFastest

// maxWindow bounds the zstd window a reader accepts. Writers use 4 MiB
// (SpeedFastest) or 8 MiB (SpeedDefault); a frame that declares more is
// refused before any history buffer is allocated for it.
const maxWindow = 16 << 20

// Encode writes one snapshot to w: the header from meta, then the body that
// body writes, compressed by zstd as it is written and cut into checksummed
// chunks, then the trailer. The state is streamed: nothing holds a second
// copy of it, only a chunk (256 KiB) and the zstd window. The bytes are the
// same on disk and in a backup stream. It returns the bytes written to w.
//
// An error from body is returned wrapped; w then holds a partial snapshot
// that any reader refuses.
func Encode(w io.Writer, meta Meta, body func(w io.Writer) error) (n int64, err error) {
	return encode(w, meta, body, newPacer(nil, 0, nil))
}

// encode is Encode with the body passing through p (whose writer it sets).
func encode(w io.Writer, meta Meta, body func(w io.Writer) error, p *pacer) (int64, error) {
	hdr, err := appendHeader(nil, meta)
	if err != nil {
		return 0, err
	}
	cw := newChunkWriter(w)
	if err := cw.writeRaw(hdr); err != nil {
		return cw.n, err
	}

	enc, err := getEncoder(cw)
	if err != nil {
		return cw.n, fmt.Errorf("checkpoint: new zstd encoder: %w", err)
	}
	defer putEncoder(enc)
	p.w, p.n = enc.Encoder, 0
	if err := body(p); err != nil {
		enc.Close()
		return cw.n, fmt.Errorf("checkpoint: encode body: %w", err)
	}
	if err := enc.Close(); err != nil {
		return cw.n, fmt.Errorf("checkpoint: compress body: %w", err)
	}

	err = cw.finish(p.n)
	return cw.n, err
}

// pooledEncoder is a zstd encoder kept between snapshots: a new one
// allocates its window and tables (about 10 MB), which back-to-back
// checkpoints would hand to the collector each time.
type pooledEncoder struct {
	*zstd.Encoder
	level zstd.EncoderLevel
}

// spare holds one encoder between snapshots. Not a sync.Pool: an item put
// there from one P can be missed by a Get on another, and is dropped by the
// second collection after, so a checkpoint found it about half the time.
// A second snapshot encoded at the same time (a backup) takes a new one.
var spare struct {
	sync.Mutex
	e *pooledEncoder
}

// getEncoder returns an encoder at encoderLevel writing a new stream to w.
func getEncoder(w io.Writer) (*pooledEncoder, error) {
	spare.Lock()
	e := spare.e
	spare.e = nil
	spare.Unlock()
	if e != nil && e.level == encoderLevel {
		e.Reset(w)
		return e, nil
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(encoderLevel),
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return &pooledEncoder{Encoder: enc, level: encoderLevel}, nil
}

// putEncoder keeps e as the spare, holding no writer.
func putEncoder(e *pooledEncoder) {
	e.Reset(nil)
	spare.Lock()
	spare.e = e
	spare.Unlock()
}

// Decode reads one snapshot from r. It checks the header, then calls fn
// with the meta and a reader of the decompressed body; every chunk's
// checksum is verified before its bytes reach fn. After fn returns nil, the
// rest of the body is read and the trailer checked: a mismatch returns a
// *CorruptionError even though fn succeeded, and the caller must discard
// what fn built. Bytes after the trailer are an error too.
//
// Damage is reported as *CorruptionError with the byte offset (File is
// empty: the caller knows the file). If the body reader failed, that error
// is returned whatever fn returned; otherwise fn's error is returned as it
// is. The zstd decoder refuses windows over 16 MiB, and no length field is
// trusted for an allocation beyond its bound (1 MiB for a chunk, 64 KiB for
// the header).
func Decode(r io.Reader, fn func(meta Meta, body io.Reader) error) error {
	_, err := decode(r, nil, fn)
	return err
}

// decode is Decode with check, called with the meta before fn (Read uses it
// to match the seq in the file name). fnFailed reports that err is fn's own
// error on a body read without fault.
func decode(r io.Reader, check func(Meta) error,
	fn func(Meta, io.Reader) error) (fnFailed bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	meta, hlen, err := readHeader(br)
	if err != nil {
		return false, err
	}
	if check != nil {
		if err := check(meta); err != nil {
			return false, err
		}
	}

	cr := &chunkReader{r: br, off: hlen}
	dec, err := zstd.NewReader(cr, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderMaxMemory(maxWindow))
	if err != nil {
		return false, fmt.Errorf("checkpoint: new zstd decoder: %w", err)
	}
	defer dec.Close()
	body := &bodyReader{dec: dec, cr: cr}

	fnErr := fn(meta, body)
	if body.err != nil {
		return false, body.err
	}
	if fnErr != nil {
		return true, fnErr
	}

	// Read what fn left, so that the chunk checksums, the trailer and the
	// frame's own checksum are all verified before success is claimed.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return false, err
	}
	return false, finishDecode(br, cr, body.n)
}

// finishDecode checks, once the zstd stream has ended, that the chunk
// stream ended with it, that the body decompressed to the length the
// trailer records and that nothing follows the trailer.
func finishDecode(br *bufio.Reader, cr *chunkReader, raw uint64) error {
	if !cr.done {
		// zstd saw the end of its frames, but chunks remain.
		return corrupt(cr.chunkOff, kindCompressed, "data after the end of the zstd stream")
	}
	if raw != cr.t.raw {
		return corrupt(cr.trailerOff, kindBodyLen,
			"body decompressed to %d bytes, trailer says %d", raw, cr.t.raw)
	}
	switch _, err := br.ReadByte(); {
	case err == nil:
		return corrupt(cr.off, kindTrailingData, "bytes after the trailer")
	case err != io.EOF:
		return fmt.Errorf("checkpoint: read snapshot at offset %d: %w", cr.off, err)
	}
	return nil
}

// bodyReader is the decompressed body handed to fn. It keeps the first
// error it returned, so that Decode reports the damage even when fn wraps
// it or replaces it with its own error.
type bodyReader struct {
	dec *zstd.Decoder
	cr  *chunkReader
	n   uint64 // decompressed bytes read
	err error  // first error other than io.EOF returned to fn
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.dec.Read(p)
	b.n += uint64(n)
	if err == nil || (err == io.EOF && b.cr.err == nil) {
		return n, err
	}

	// The chunk reader's own error (damage or I/O) wins over whatever zstd
	// made of it; anything else is a frame zstd cannot decode.
	if b.cr.err != nil {
		b.err = b.cr.err
	} else {
		b.err = &CorruptionError{Offset: b.cr.chunkOff, Kind: kindCompressed, Err: err}
	}
	return n, b.err
}

// chunkReader yields the zstd bytes of the body chunk by chunk, each only
// after its checksum matched, and checks the trailer when it reaches it.
type chunkReader struct {
	r          *bufio.Reader
	off        int64  // offset of the next unread byte of the snapshot
	chunkOff   int64  // offset of the chunk being yielded
	trailerOff int64  // offset of the trailer, once reached
	buf        []byte // payload of the current chunk
	pos        int    // bytes of buf already yielded
	crc        uint32 // running CRC32C of the body bytes read so far
	chunks     uint64
	packed     uint64
	t          trailer
	done       bool  // trailer read and checked
	err        error // sticky
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.pos == len(c.buf) {
		if c.done {
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			c.err = err
			return 0, err
		}
	}
	n := copy(p, c.buf[c.pos:])
	c.pos += n
	return n, nil
}

// next reads the chunk (or the trailer) at c.off.
func (c *chunkReader) next() error {
	var h [trailerLen]byte
	off := c.off
	if k, err := io.ReadFull(c.r, h[:chunkHeaderLen]); err != nil {
		return readErr(off+int64(k), err)
	}
	n := binary.LittleEndian.Uint32(h[0:])
	if n == 0 {
		return c.readTrailer(h)
	}
	if n > maxChunk {
		return corrupt(off, kindChunkLen, "chunk length %d exceeds %d", n, maxChunk)
	}

	buf, err := growRead(c.r, c.buf, int(n))
	c.buf, c.pos = buf, 0
	if err != nil {
		c.buf = c.buf[:0]
		return readErr(off+chunkHeaderLen+int64(len(buf)), err)
	}
	want := binary.LittleEndian.Uint32(h[4:])
	if got := crc32.Checksum(buf, castagnoli); got != want {
		c.buf = c.buf[:0]
		return &CorruptionError{Offset: off, Kind: kindChunkCRC,
			Err: fmt.Errorf("%w: chunk CRC %08x, computed %08x", ErrChecksum, want, got)}
	}

	c.crc = crc32.Update(c.crc, castagnoli, h[:chunkHeaderLen])
	c.crc = crc32.Update(c.crc, castagnoli, buf)
	c.chunks++
	c.packed += uint64(n)
	c.chunkOff = off
	c.off = off + chunkHeaderLen + int64(n)
	return nil
}

// readTrailer reads the rest of the trailer whose first 8 bytes are in h and
// compares it with what the chunks added up to.
func (c *chunkReader) readTrailer(h [trailerLen]byte) error {
	off := c.off
	if k, err := io.ReadFull(c.r, h[chunkHeaderLen:]); err != nil {
		return readErr(off+chunkHeaderLen+int64(k), err)
	}
	t, err := parseTrailer(h[:], off)
	if err != nil {
		return err
	}
	if t.bodyCRC != c.crc {
		return &CorruptionError{Offset: off, Kind: kindBodyCRC,
			Err: fmt.Errorf("%w: body CRC %08x, computed %08x", ErrChecksum, t.bodyCRC, c.crc)}
	}
	if uint64(t.chunks) != c.chunks || t.packed != c.packed {
		return corrupt(off, kindBodyLen, "trailer says %d chunks of %d bytes, read %d of %d",
			t.chunks, t.packed, c.chunks, c.packed)
	}

	c.t, c.done = t, true
	c.buf, c.pos = c.buf[:0], 0
	c.trailerOff = off
	c.off = off + trailerLen
	return nil
}

// chunkWriter cuts the zstd stream into chunks of writeChunk bytes and
// writes each, framed and checksummed, to w in one call. It is the buffer
// between the encoder and the file.
type chunkWriter struct {
	w   io.Writer
	buf []byte // chunk header room, then the payload gathered so far
	n   int64  // bytes written to w
	crc uint32 // running CRC32C of the body bytes written
	t   trailer
	err error // sticky: a failed writer is not written again
}

func newChunkWriter(w io.Writer) *chunkWriter {
	return &chunkWriter{w: w, buf: make([]byte, chunkHeaderLen, chunkHeaderLen+writeChunk)}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if c.err != nil {
			return written, c.err
		}
		k := min(cap(c.buf)-len(c.buf), len(p))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		written += k
		if len(c.buf) == cap(c.buf) {
			c.flush()
		}
	}
	return written, c.err
}

// flush writes the gathered payload as one chunk.
func (c *chunkWriter) flush() {
	if len(c.buf) == chunkHeaderLen || c.err != nil {
		return
	}
	putChunkHeader(c.buf, c.buf[chunkHeaderLen:])
	if err := c.writeRaw(c.buf); err != nil {
		return
	}
	c.crc = crc32.Update(c.crc, castagnoli, c.buf)
	c.t.chunks++
	c.t.packed += uint64(len(c.buf) - chunkHeaderLen)
	c.buf = c.buf[:chunkHeaderLen]
}

// writeRaw writes b to w as it is.
func (c *chunkWriter) writeRaw(b []byte) error {
	if c.err != nil {
		return c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.err = fmt.Errorf("checkpoint: write snapshot at offset %d: %w", c.n, err)
	}
	return c.err
}

// finish writes the last chunk and the trailer.
func (c *chunkWriter) finish(raw uint64) error {
	c.flush()
	c.t.raw, c.t.bodyCRC = raw, c.crc
	return c.writeRaw(appendTrailer(nil, c.t))
}
