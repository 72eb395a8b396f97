package checkpoint

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"time"
)

// This file holds the byte layout of a snapshot only: the header, the chunk
// framing of the compressed body and the trailer. doc.go draws the whole
// file; each encode/decode pair below repeats its own ruler.

const (
	// magic opens every snapshot. The high first byte keeps the file from
	// being taken for text; "\r\n" catches line-ending conversion.
	magic = "\x89PSNAP\r\n"

	// version is the format version written. Every version keeps the first
	// 16 bytes and the header CRC right after the meta section, so a reader
	// can always check the header before it judges the version.
	version = 1

	fixedLen   = 16      // magic, version, flags, meta length
	minMetaLen = 20      // seq, time, count of counts
	maxMetaLen = 1 << 16 // bounds the one allocation made from a length field
	maxNameLen = 255     // a count's name fits a uint8 length

	chunkHeaderLen = 8       // payload length, payload CRC
	maxChunk       = 1 << 20 // largest chunk payload a reader accepts
	writeChunk     = 1 << 18 // chunk payload size a writer emits
	trailerLen     = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Meta is what a snapshot says about itself, readable without decompressing
// the body: the seq of the last event in the state, when the state was
// captured and a few named counts (jobs by state, for example) for tools.
type Meta struct {
	Seq    uint64
	Time   time.Time
	Counts map[string]uint64
}

// appendHeader encodes the header:
//
//	0        8     10     12       16    24     32     36           16+M
//	+--------+-----+------+--------+-----+------+------+-- ... --+--------+
//	| magic  | ver | flags| M u32  | seq | time | n u32| counts  | CRC32C |
//	+--------+-----+------+--------+-----+------+------+-- ... --+--------+
//	|<------ fixed 16 ----------->|<------------- M bytes ------>|
//
// ver and flags are uint16, seq uint64, time int64 Unix nanoseconds (0 for
// the zero time), all little-endian. Each of the n counts is a name length
// (uint8, 1..255), the name and a uint64 value; names are unique and sorted.
// The CRC32C (Castagnoli) covers bytes [0, 16+M).
func appendHeader(dst []byte, meta Meta) ([]byte, error) {
	var nanos int64
	if !meta.Time.IsZero() {
		nanos = meta.Time.UnixNano()
		if !time.Unix(0, nanos).Equal(meta.Time) || nanos == 0 {
			return nil, fmt.Errorf("checkpoint: meta time %v out of range", meta.Time)
		}
	}
	names := make([]string, 0, len(meta.Counts))
	for name := range meta.Counts {
		if len(name) == 0 || len(name) > maxNameLen {
			return nil, fmt.Errorf("checkpoint: count name %q: length not in 1..%d",
				name, maxNameLen)
		}
		names = append(names, name)
	}
	sort.Strings(names)

	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint16(dst, version)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // M, set below
	dst = binary.LittleEndian.AppendUint64(dst, meta.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(nanos))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(names)))
	for _, name := range names {
		dst = append(dst, byte(len(name)))
		dst = append(dst, name...)
		dst = binary.LittleEndian.AppendUint64(dst, meta.Counts[name])
	}

	m := len(dst) - start - fixedLen
	if m > maxMetaLen {
		return nil, fmt.Errorf("checkpoint: meta of %d bytes exceeds %d", m, maxMetaLen)
	}
	binary.LittleEndian.PutUint32(dst[start+12:], uint32(m))
	crc := crc32.Checksum(dst[start:], castagnoli)
	return binary.LittleEndian.AppendUint32(dst, crc), nil
}

// readHeader reads and checks the header (see appendHeader) from r, which
// starts at offset 0 of the snapshot. It returns the meta and the header's
// length. The meta length is checked against its bound before anything is
// allocated from it.
func readHeader(r io.Reader) (Meta, int64, error) {
	var fixed [fixedLen]byte
	if n, err := io.ReadFull(r, fixed[:]); err != nil {
		return Meta{}, 0, readErr(int64(n), err)
	}
	if string(fixed[:8]) != magic {
		return Meta{}, 0, corrupt(0, kindMagic, "not a snapshot: magic %x", fixed[:8])
	}
	m := binary.LittleEndian.Uint32(fixed[12:])
	if m < minMetaLen || m > maxMetaLen {
		return Meta{}, 0, corrupt(12, kindHeaderLen, "meta length %d not in %d..%d",
			m, minMetaLen, maxMetaLen)
	}

	buf := make([]byte, fixedLen+int(m)+4)
	copy(buf, fixed[:])
	if n, err := io.ReadFull(r, buf[fixedLen:]); err != nil {
		return Meta{}, 0, readErr(int64(fixedLen+n), err)
	}
	end := fixedLen + int(m)
	want := binary.LittleEndian.Uint32(buf[end:])
	if got := crc32.Checksum(buf[:end], castagnoli); got != want {
		return Meta{}, 0, &CorruptionError{Offset: int64(end), Kind: kindHeaderCRC,
			Err: fmt.Errorf("%w: header CRC %08x, computed %08x", ErrChecksum, want, got)}
	}
	if v := binary.LittleEndian.Uint16(buf[8:]); v != version {
		return Meta{}, 0, &CorruptionError{Offset: 8, Kind: kindVersion,
			Err: fmt.Errorf("%w %d (this build reads %d)", ErrUnsupportedVersion, v, version)}
	}
	if f := binary.LittleEndian.Uint16(buf[10:]); f != 0 {
		return Meta{}, 0, corrupt(10, kindHeader, "unknown flags %#04x", f)
	}

	meta, err := parseMeta(buf[fixedLen:end])
	if err != nil {
		return Meta{}, 0, err
	}
	return meta, int64(len(buf)), nil
}

// parseMeta decodes the M bytes after the fixed header. Offsets in its errors
// are absolute.
func parseMeta(b []byte) (Meta, error) {
	meta := Meta{
		Seq:    binary.LittleEndian.Uint64(b[0:]),
		Counts: map[string]uint64{},
	}
	if nanos := int64(binary.LittleEndian.Uint64(b[8:])); nanos != 0 {
		meta.Time = time.Unix(0, nanos).UTC()
	}
	n := binary.LittleEndian.Uint32(b[16:])

	pos := minMetaLen
	prev := ""
	for i := uint32(0); i < n; i++ {
		off := int64(fixedLen + pos)
		if pos >= len(b) {
			return Meta{}, corrupt(off, kindHeader, "count %d of %d beyond the meta", i, n)
		}
		l := int(b[pos])
		if l == 0 || pos+1+l+8 > len(b) {
			return Meta{}, corrupt(off, kindHeader, "count %d: name length %d", i, l)
		}
		name := string(b[pos+1 : pos+1+l])
		if i > 0 && name <= prev {
			return Meta{}, corrupt(off, kindHeader, "count %d: name %q not after %q",
				i, name, prev)
		}
		meta.Counts[name] = binary.LittleEndian.Uint64(b[pos+1+l:])
		prev = name
		pos += 1 + l + 8
	}
	if pos != len(b) {
		return Meta{}, corrupt(int64(fixedLen+pos), kindHeader,
			"%d bytes after the last count", len(b)-pos)
	}
	return meta, nil
}

// putChunkHeader frames one chunk of the compressed body:
//
//	0          4          8
//	+----------+----------+---------------------+
//	| len u32  | CRC32C   | len bytes of zstd   |
//	+----------+----------+---------------------+
//
// len is 1..maxChunk; the CRC32C covers the len payload bytes. A len of 0
// is not a chunk: it opens the trailer.
func putChunkHeader(dst []byte, payload []byte) {
	binary.LittleEndian.PutUint32(dst[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[4:], crc32.Checksum(payload, castagnoli))
}

// trailer is what the end of a snapshot records about its body.
type trailer struct {
	chunks  uint32 // number of chunks
	packed  uint64 // sum of the chunk payload lengths (zstd bytes)
	raw     uint64 // bytes the body decompresses to
	bodyCRC uint32 // CRC32C of every body byte: chunk headers and payloads
}

// appendTrailer encodes the trailer:
//
//	0        4        8            16          24         28         32
//	+--------+--------+------------+-----------+----------+----------+
//	| 0 u32  | chunks | packed u64 | raw u64   | body CRC | CRC32C   |
//	+--------+--------+------------+-----------+----------+----------+
//
// The leading zero is where the next chunk's length would be. The body CRC
// covers the bytes from the end of the header to the start of the trailer;
// the last CRC32C covers trailer bytes [0, 28).
func appendTrailer(dst []byte, t trailer) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, t.chunks)
	dst = binary.LittleEndian.AppendUint64(dst, t.packed)
	dst = binary.LittleEndian.AppendUint64(dst, t.raw)
	dst = binary.LittleEndian.AppendUint32(dst, t.bodyCRC)
	crc := crc32.Checksum(dst[start:], castagnoli)
	return binary.LittleEndian.AppendUint32(dst, crc)
}

// parseTrailer decodes b (trailerLen bytes found at offset off) and checks
// its own CRC.
func parseTrailer(b []byte, off int64) (trailer, error) {
	want := binary.LittleEndian.Uint32(b[28:])
	if got := crc32.Checksum(b[:28], castagnoli); got != want {
		return trailer{}, &CorruptionError{Offset: off, Kind: kindTrailerCRC,
			Err: fmt.Errorf("%w: trailer CRC %08x, computed %08x", ErrChecksum, want, got)}
	}
	return trailer{
		chunks:  binary.LittleEndian.Uint32(b[4:]),
		packed:  binary.LittleEndian.Uint64(b[8:]),
		raw:     binary.LittleEndian.Uint64(b[16:]),
		bodyCRC: binary.LittleEndian.Uint32(b[24:]),
	}, nil
}

// readErr turns a short read at offset off into a CorruptionError; any other
// error (a failing disk, a closed connection) is returned as it is.
func readErr(off int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &CorruptionError{Offset: off, Kind: kindTruncated, Err: ErrTruncated}
	}
	return fmt.Errorf("checkpoint: read snapshot at offset %d: %w", off, err)
}

// growRead reads exactly n bytes from r into buf, reusing its capacity and
// growing it only as bytes arrive, so a hostile length costs no more memory
// than the bytes that actually follow it. It returns the bytes read.
func growRead(r io.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(len(buf), 64<<10), n-len(buf)))
		}
		end := min(n, cap(buf))
		k, err := io.ReadFull(r, buf[len(buf):end])
		buf = buf[:len(buf)+k]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}
