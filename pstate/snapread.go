package pstate

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// snapReader decodes a snapshot body from a buffer it refills from r; the
// first error sticks and carries the body offset. Strings that repeat
// across jobs (names, workers, step names, labels) are interned, and a job
// whose declared steps or labels equal a recent job's shares that slice
// (they never change after submission), so a decoded state holds one copy
// of each.
type snapReader struct {
	r    io.Reader
	buf  []byte // buf[pos:] is read but not yet decoded
	pos  int
	off  int64 // body offset of buf[pos]
	rerr error // the reader's error; io.EOF at the end
	err  error

	intern map[string]string
	steps  [8][]string // recent distinct step lists, round robin
	labels [8][]label
	ns, nl int
	// The last job's steps or labels are a list an earlier job had (and
	// passed checkJob with: the decoder stops at the first that fails).
	sharedSteps, sharedLabels bool
	scrS                      []string
	scrL                      []label
}

const (
	snapBufSize   = 256 << 10
	maxInterned   = 1 << 16 // distinct strings kept for interning
	maxInternSize = 64      // longer strings are not interned
)

func newSnapReader(r io.Reader) *snapReader {
	return &snapReader{r: r, buf: make([]byte, 0, snapBufSize), intern: map[string]string{}}
}

// fill makes n bytes available in buf[pos:], reading as needed; false when
// the body ends (or fails) first. n is at most a string's limit plus a
// varint, far below the buffer's size.
func (d *snapReader) fill(n int) bool {
	for len(d.buf)-d.pos < n {
		if d.rerr != nil {
			return false
		}
		if d.pos > 0 {
			k := copy(d.buf, d.buf[d.pos:])
			d.buf, d.pos = d.buf[:k], 0
		}
		if cap(d.buf)-len(d.buf) < n {
			d.buf = slices.Grow(d.buf, n)
		}
		m, err := d.r.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+m]
		if err != nil {
			d.rerr = err
		}
	}
	return true
}

func (d *snapReader) corrupt(kind string) error {
	if d.err == nil {
		d.err = &CorruptionError{Offset: d.off, Kind: kind}
	}
	return d.err
}

func (d *snapReader) readErr(err error) {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if d.err == nil {
		d.err = &CorruptionError{Offset: d.off, Kind: "truncated or unreadable", Err: err}
	}
}

func (d *snapReader) advance(n int) {
	d.pos += n
	d.off += int64(n)
}

func (d *snapReader) byte() byte {
	if d.err != nil {
		return 0
	}
	if !d.fill(1) {
		d.readErr(d.rerr)
		return 0
	}
	c := d.buf[d.pos]
	d.advance(1)
	return c
}

func (d *snapReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	d.fill(binary.MaxVarintLen64)
	v, n := binary.Uvarint(d.buf[d.pos:])
	switch {
	case n == 0:
		d.readErr(d.rerr)
		return 0
	case n < 0:
		d.corrupt("varint overflows 64 bits")
		return 0
	case n != uvarintLen(v):
		d.corrupt("varint not in its shortest form")
		return 0
	}
	d.advance(n)
	return v
}

// varint reads a signed varint: binary.Varint's zigzag form of a uvarint,
// so uvarint's checks (shortest form, overflow) cover it.
func (d *snapReader) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// str reads a string of at most max bytes; intern shares repeated ones.
func (d *snapReader) str(max int, intern bool) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) {
		d.corrupt(fmt.Sprintf("string of %d bytes, more than %d", n, max))
		return ""
	}
	if !d.fill(int(n)) {
		d.readErr(d.rerr)
		return ""
	}
	b := d.buf[d.pos : d.pos+int(n)]
	d.advance(int(n))
	if !intern || n > maxInternSize {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < maxInterned {
		d.intern[s] = s
	}
	return s
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

func (d *snapReader) job() *job {
	j := &job{
		id: d.str(MaxIDBytes, false), name: d.str(MaxNameBytes, true),
		worker: d.str(MaxNameBytes, true), reason: d.str(MaxReasonBytes, true),
	}
	d.sharedSteps, d.sharedLabels = false, false
	j.state = jobState(d.byte())
	j.submitted, j.started, j.finished = d.varint(), d.varint(), d.varint()
	if n := d.count("labels", MaxLabels); n > 0 {
		d.scrL = d.scrL[:0]
		for range n {
			d.scrL = append(d.scrL, label{d.str(MaxLabelKey, true), d.str(MaxLabelValue, true)})
		}
		j.labels = d.shareLabels()
	}
	d.scrS = d.scrS[:0]
	for range d.count("steps", MaxSteps) {
		d.scrS = append(d.scrS, d.str(MaxIDBytes, true))
	}
	j.steps = d.shareSteps()
	if n := d.count("attempts", MaxSteps*MaxAttempt); n > 0 {
		j.attempts = make([]attempt, 0, min(n, 1024))
		for range n {
			a := attempt{step: uint16(d.count("step index", MaxSteps)),
				num: uint32(d.count("attempt", MaxAttempt)), status: d.byte()}
			a.started, a.finished = d.varint(), d.varint()
			exit := d.varint()
			if exit < minExitCode || exit > maxExitCode {
				d.corrupt("exit code out of range")
			}
			a.exit = int32(exit)
			j.attempts = append(j.attempts, a)
		}
	}
	if n := d.count("workspaces", MaxJobWorkspaces); n > 0 {
		j.workspaces = make([]string, 0, min(n, 1024))
		for range n {
			j.workspaces = append(j.workspaces, d.str(MaxIDBytes, false))
		}
	}
	return j
}

// shareSteps returns a recent job's step list equal to d.scrS, or a copy.
func (d *snapReader) shareSteps() []string {
	for _, s := range d.steps {
		if s != nil && slices.Equal(s, d.scrS) {
			d.sharedSteps = true
			return s
		}
	}
	s := slices.Clone(d.scrS)
	if s == nil {
		s = []string{}
	}
	d.steps[d.ns%len(d.steps)], d.ns = s, d.ns+1
	return s
}

// shareLabels returns a recent job's labels equal to d.scrL, or a copy.
func (d *snapReader) shareLabels() []label {
	for _, l := range d.labels {
		if l != nil && slices.Equal(l, d.scrL) {
			d.sharedLabels = true
			return l
		}
	}
	l := slices.Clone(d.scrL)
	d.labels[d.nl%len(d.labels)], d.nl = l, d.nl+1
	return l
}
