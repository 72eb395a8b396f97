package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// This file holds byte encoding only: the file header and the record frame.
// The rulers in doc.go and docs/FORMAT.md draw the same layout; change them
// together.

// FormatVersion is the version written in the file header. A log with
// another version is refused.
const FormatVersion = 1

// Sizes of the fixed parts of the format.
const (
	fileHeaderSize   = 32
	recordHeaderSize = 16
)

// MaxRecordLimit is the largest payload the format admits; Options.
// MaxRecordSize may not exceed it.
const MaxRecordLimit = 1 << 30

// fileMagic opens every log file.
var fileMagic = [8]byte{'P', 'S', 'T', 'A', 'T', 'W', 'A', 'L'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileHeader is the decoded file header.
type fileHeader struct {
	version uint32
	// maxRecord is the largest payload any record of this file may hold.
	maxRecord uint32
	// baseSeq is the seq of the file's first record, or of the next record
	// written when the file holds none.
	baseSeq uint64
}

// File header, 32 bytes, little-endian:
//
//	0        8        12       16                24       28       32
//	+--------+--------+--------+-----------------+--------+--------+
//	| magic  |version |max rec |    base seq     |  zero  | crc32c |
//	+--------+--------+--------+-----------------+--------+--------+
//
// crc32c (Castagnoli) covers bytes 0 to 28.
func encodeFileHeader(h fileHeader) []byte {
	b := make([]byte, fileHeaderSize)
	copy(b[0:8], fileMagic[:])
	binary.LittleEndian.PutUint32(b[8:12], h.version)
	binary.LittleEndian.PutUint32(b[12:16], h.maxRecord)
	binary.LittleEndian.PutUint64(b[16:24], h.baseSeq)
	binary.LittleEndian.PutUint32(b[28:32], crc32.Checksum(b[:28], castagnoli))
	return b
}

// decodeFileHeader checks and decodes the first fileHeaderSize bytes of a
// log. The error names the field at fault.
func decodeFileHeader(b []byte) (fileHeader, error) {
	if len(b) < fileHeaderSize {
		return fileHeader{}, fmt.Errorf("file header: %d bytes, want %d", len(b), fileHeaderSize)
	}
	if [8]byte(b[0:8]) != fileMagic {
		return fileHeader{}, fmt.Errorf("file header: magic %q, want %q", b[0:8], fileMagic[:])
	}
	want := binary.LittleEndian.Uint32(b[28:32])
	if got := crc32.Checksum(b[:28], castagnoli); got != want {
		return fileHeader{}, fmt.Errorf("file header: checksum %08x, stored %08x", got, want)
	}
	h := fileHeader{
		version:   binary.LittleEndian.Uint32(b[8:12]),
		maxRecord: binary.LittleEndian.Uint32(b[12:16]),
		baseSeq:   binary.LittleEndian.Uint64(b[16:24]),
	}
	switch {
	case h.version != FormatVersion:
		return h, fmt.Errorf("file header: version %d, this build reads %d", h.version, FormatVersion)
	case h.maxRecord == 0 || h.maxRecord > MaxRecordLimit:
		return h, fmt.Errorf("file header: max record size %d out of range", h.maxRecord)
	case h.baseSeq == 0:
		return h, errors.New("file header: base seq 0")
	}
	return h, nil
}

// Record frame, 16 bytes of header then the payload, little-endian:
//
//	0        4        8                 16
//	+--------+--------+-----------------+------------------------+
//	| crc32c | length |       seq       | payload (length bytes) |
//	+--------+--------+-----------------+------------------------+
//
// crc32c (Castagnoli) covers bytes 4 to 16 of the header and then the
// payload, so a damaged length or seq fails the check like a damaged
// payload. An all-zero header never passes: the checksum of twelve zero
// bytes is not zero, and seq 0 is never written.
func appendRecord(dst []byte, seq uint64, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recordHeaderSize)...)
	h := dst[start : start+recordHeaderSize]
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	dst = append(dst, payload...)
	crc := crc32.Update(crc32.Checksum(h[4:16], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(dst[start:start+4], crc)
	return dst
}

// recordHeader is a decoded, not yet checked, record header.
type recordHeader struct {
	crc    uint32
	length uint32
	seq    uint64
}

func decodeRecordHeader(b []byte) recordHeader {
	return recordHeader{
		crc:    binary.LittleEndian.Uint32(b[0:4]),
		length: binary.LittleEndian.Uint32(b[4:8]),
		seq:    binary.LittleEndian.Uint64(b[8:16]),
	}
}

// recordSum computes the checksum of a record from its header bytes and
// its payload.
func recordSum(header, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(header[4:16], castagnoli), castagnoli, payload)
}

// checkRecordSize is the one size check, used by the writer on every
// payload and by the reader on every length field, so that no record the
// writer accepts fails on replay.
func checkRecordSize(n int64, limit int) error {
	if n > int64(limit) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, n, limit)
	}
	return nil
}
