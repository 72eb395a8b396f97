package pstate

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
)

// snapReader decodes a snapshot body from a buffer it refills from r; the
// first error sticks and carries the body offset. Strings are checked as
// they are read (length, UTF-8, control characters), so an error names the
// offset of the string at fault. Strings that repeat across jobs (names,
// workers, step names, labels) are interned, and a job whose declared steps
// or labels equal a recent job's shares that slice (they never change after
// submission), so a decoded state holds one copy of each. The rest is
// carved from the slabs of alloc: a few allocations serve many jobs.
type snapReader struct {
	r    io.Reader
	buf  []byte // buf[pos:] is read but not yet decoded
	pos  int
	base int64 // body offset of buf[0]
	rerr error // the reader's error; io.EOF at the end
	err  error

	alloc  snapAlloc
	jobID  string // the job being read, named by errors
	intern map[string]string
	steps  [8][]string // recent distinct step lists, round robin
	labels [8][]label
	ns, nl int
	// The last job's strings, the hints of common.
	last       job
	lastLabels []label
	lastSteps  []string
	// The bytes of the last job's labels and steps sections, for same.
	rawLabels, rawSteps []byte
	scrS                []string
	scrL                []label
	scrID               []byte

	js      []*job       // the jobs read, ascending
	ws      []*workspace // the workspaces read, ascending
	lastJob int          // index in js of the last workspace's job

	// The attempt checks' counters, by step index: the last attempt
	// number seen and whether it is still running.
	next    [MaxSteps]uint32
	running [MaxSteps]bool
}

const (
	snapBufSize   = 256 << 10
	maxInterned   = 1 << 16 // distinct strings kept for interning
	maxInternSize = 64      // longer strings are not interned
)

func newSnapReader(r io.Reader) *snapReader {
	return &snapReader{r: r, buf: make([]byte, 0, 4<<10), intern: map[string]string{}}
}

// offset is the body offset of the next byte to decode.
func (d *snapReader) offset() int64 { return d.base + int64(d.pos) }

// fill makes n bytes available in buf[pos:], reading as needed; false when
// the body ends (or fails) first. n is at most a job's steps or labels
// section (some 33 KiB), below the buffer's full size.
func (d *snapReader) fill(n int) bool {
	for len(d.buf)-d.pos < n {
		if d.rerr != nil {
			return false
		}
		if d.pos > 0 {
			k := copy(d.buf, d.buf[d.pos:])
			d.base += int64(d.pos)
			d.buf, d.pos = d.buf[:k], 0
		}
		// The buffer starts small and doubles with each read up to
		// snapBufSize: a small body costs little.
		if grow := max(n, min(cap(d.buf), snapBufSize-cap(d.buf))); cap(d.buf)-len(d.buf) < grow {
			d.buf = slices.Grow(d.buf, grow)
		}
		m, err := d.r.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+m]
		if err != nil {
			d.rerr = err
		}
	}
	return true
}

// corrupt records bad bytes at the current offset.
func (d *snapReader) corrupt(kind string) error {
	return d.corruptAt(d.offset(), kind, nil)
}

// corruptAt records bad bytes at off: kind says what (within the job being
// read, if any), err (may be nil) why.
func (d *snapReader) corruptAt(off int64, kind string, err error) error {
	if d.err == nil {
		if d.jobID != "" {
			kind = fmt.Sprintf("job %q: %s", d.jobID, kind)
		}
		d.err = &CorruptionError{Offset: off, Kind: kind, Err: err}
	}
	return d.err
}

func (d *snapReader) readErr(err error) {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if d.err == nil {
		d.err = &CorruptionError{Offset: d.offset(), Kind: "truncated or unreadable", Err: err}
	}
}

func (d *snapReader) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.pos == len(d.buf) && !d.fill(1) {
		d.readErr(d.rerr)
		return 0
	}
	c := d.buf[d.pos]
	d.pos++
	return c
}

// uvarint reads a uvarint in its shortest form: one value, one encoding.
// The one-byte case is kept small enough to inline.
func (d *snapReader) uvarint() uint64 {
	if d.pos < len(d.buf) && d.buf[d.pos] < 0x80 && d.err == nil {
		d.pos++
		return uint64(d.buf[d.pos-1])
	}
	return d.uvarintLong()
}

func (d *snapReader) uvarintLong() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf)-d.pos < binary.MaxVarintLen64 {
		d.fill(binary.MaxVarintLen64) // short near the end: Uvarint says so
	}
	if v, n := fastUvarint(d.buf, d.pos); n > 0 {
		d.pos += n
		return v
	}
	b := d.buf[d.pos:]
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		d.readErr(d.rerr)
		return 0
	case n < 0:
		d.corrupt("varint overflows 64 bits")
		return 0
	case b[n-1] == 0:
		// A last byte of zero adds no bits: a shorter form exists.
		d.corrupt("varint not in its shortest form")
		return 0
	}
	d.pos += n
	return v
}

// fastUvarint decodes the uvarint at b[p:] and its length, or 0 when it
// is cut short, overflows or is not in its shortest form (the caller's
// checked path then says which). Up to nine bytes are decoded from one
// 8-byte load: the first clear top bit ends the varint, and three
// mask-and-shift steps pack the 7-bit groups together.
func fastUvarint(b []byte, p int) (v uint64, n int) {
	if p < 0 || len(b)-p < 9 {
		return slowUvarint(b, p)
	}
	x := binary.LittleEndian.Uint64(b[p:])
	if ends := ^x & 0x8080808080808080; ends != 0 {
		n = bits.TrailingZeros64(ends)/8 + 1
		if n < 8 {
			x &= 1<<(8*n) - 1
		}
		if n > 1 && x>>(8*(n-1)) == 0 {
			return 0, 0 // a last byte of zero: not the shortest form
		}
		return pack7(x), n
	}
	if c := b[p+8]; c < 0x80 && c != 0 {
		return pack7(x) | uint64(c)<<56, 9
	}
	return slowUvarint(b, p)
}

// pack7 joins the low 7 bits of each byte of x, the first byte lowest.
func pack7(x uint64) uint64 {
	x &= 0x7f7f7f7f7f7f7f7f
	x = x&0x007f007f007f007f | x&0x7f007f007f007f00>>1
	x = x&0x00003fff00003fff | x&0x3fff00003fff0000>>2
	return x&0x000000000fffffff | x&0x0fffffff00000000>>4
}

// slowUvarint is fastUvarint a byte at a time.
func slowUvarint(b []byte, p int) (v uint64, n int) {
	for i := 0; i < binary.MaxVarintLen64 && p+i < len(b); i++ {
		c := b[p+i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if (c == 0 && i > 0) || (i == binary.MaxVarintLen64-1 && c > 1) {
				return 0, 0
			}
			return v, i + 1
		}
	}
	return 0, 0
}

// varint reads a signed varint: binary.Varint's zigzag form of a uvarint,
// so uvarint's checks (shortest form, overflow) cover it.
func (d *snapReader) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// count reads a count and refuses one above max.
func (d *snapReader) count(what string, max uint64) int {
	n := d.uvarint()
	if d.err == nil && n > max {
		d.corrupt(fmt.Sprintf("%d %s, more than %d", n, what, max))
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// text reads a string of field (at most max bytes), checked as
// checkString checks it, and refused when empty if nonEmpty. The bytes are
// valid until the next read; nil after an error.
func (d *snapReader) text(field string, max int, ident, nonEmpty bool) []byte {
	start := d.offset()
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.corruptAt(start, field, fmt.Errorf("string of %d bytes, more than %d", n, max))
		return nil
	}
	if !d.fill(int(n)) {
		d.readErr(d.rerr)
		return nil
	}
	b := d.buf[d.pos : d.pos+int(n)]
	d.pos += int(n)
	if n == 0 && nonEmpty {
		d.corruptAt(start, field, fmt.Errorf("empty"))
		return nil
	}
	if !plainText(b, ident) {
		if err := checkString(field, string(b), max, ident); err != nil {
			d.corruptAt(start, field, err)
			return nil
		}
	}
	return b
}

// plainText reports whether b is printable ASCII (free text may also hold
// tab, newline and other control characters but NUL): such bytes pass
// checkString, which the rest is left to.
func plainText(b []byte, ident bool) bool {
	lo := byte(1)
	if ident {
		lo = 0x20
	}
	for _, c := range b {
		if c < lo || c > 0x7e {
			return false
		}
	}
	return true
}

// str reads a string as text does and returns it held by the reader's
// arena.
func (d *snapReader) str(field string, max int, ident, nonEmpty bool) string {
	return d.alloc.str(d.text(field, max, ident, nonEmpty))
}

// common reads a string as text does and interns it: one copy of each
// short string that repeats. hint is the string expected (the same field
// of the job before): equal bytes take it without a lookup.
func (d *snapReader) common(field string, max int, ident, nonEmpty bool, hint string) string {
	// The hint passed these checks: the same bytes need none.
	if n := len(hint); n > 0 && n < 0x80 && d.err == nil && len(d.buf)-d.pos > n &&
		d.buf[d.pos] == byte(n) && string(d.buf[d.pos+1:d.pos+1+n]) == hint {
		d.pos += 1 + n
		return hint
	}
	b := d.text(field, max, ident, nonEmpty)
	if len(b) == 0 {
		return ""
	}
	if string(b) == hint {
		return hint
	}
	if len(b) > maxInternSize {
		return d.alloc.str(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := d.alloc.str(b)
	if len(d.intern) < maxInterned {
		d.intern[s] = s
	}
	return s
}

// same reports whether the next bytes are raw, and skips them if so. raw
// is a section as the last job had it: the encoding is self-delimiting, so
// the same bytes decode to the same values and end at the same place.
func (d *snapReader) same(raw []byte) bool {
	n := len(raw)
	if n == 0 || d.err != nil || len(d.buf)-d.pos < n && !d.fill(n) {
		return false
	}
	if string(d.buf[d.pos:d.pos+n]) != string(raw) {
		return false
	}
	d.pos += n
	return true
}

// keep copies the bytes read since body offset start into *raw, for same;
// it empties *raw after an error or when the buffer no longer holds them.
func (d *snapReader) keep(raw *[]byte, start int64) {
	if d.err != nil || start < d.base {
		*raw = (*raw)[:0]
		return
	}
	*raw = append((*raw)[:0], d.buf[start-d.base:d.pos]...)
}

// shareSteps returns a recent job's step list equal to d.scrS, or a copy
// after checking that no name is declared twice.
func (d *snapReader) shareSteps(start int64) []string {
	if slices.Equal(d.lastSteps, d.scrS) {
		return d.lastSteps
	}
	for _, s := range d.steps {
		if s != nil && slices.Equal(s, d.scrS) {
			return s
		}
	}
	for i, s := range d.scrS {
		if slices.Contains(d.scrS[:i], s) {
			d.corruptAt(start, "steps", fmt.Errorf("step %q declared twice", s))
			return nil
		}
	}
	s := slices.Clone(d.scrS)
	d.steps[d.ns%len(d.steps)], d.ns = s, d.ns+1
	return s
}

// shareLabels returns a recent job's labels equal to d.scrL, or a copy.
func (d *snapReader) shareLabels() []label {
	if slices.Equal(d.lastLabels, d.scrL) {
		return d.lastLabels
	}
	for _, l := range d.labels {
		if l != nil && slices.Equal(l, d.scrL) {
			return l
		}
	}
	l := slices.Clone(d.scrL)
	d.labels[d.nl%len(d.labels)], d.nl = l, d.nl+1
	return l
}
