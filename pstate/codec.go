package pstate

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The log encoding of one event (one log record's payload). See doc.go for
// why it is tagged fields rather than JSON.
//
//	+---------+------+-------+-------------------------------------------+
//	| version | type | flags | field*                                    |
//	|  0x01   | 1 B  | 1 B   | tag (uvarint) + value; tags ascending     |
//	+---------+------+-------+-------------------------------------------+
//
//	flags:  bit 0 = effect; the other bits are zero
//	value:  string      uvarint length, then the bytes
//	        time        zigzag varint, Unix nanoseconds
//	        attempt     uvarint
//	        exit_code   zigzag varint
//	        status      1 byte: 1 succeeded, 2 failed, 3 skipped, 4 canceled
//	        steps       uvarint count, then that many strings
//	        labels      uvarint count, then key and value strings, keys ascending
//
// Tags are the field bit numbers in event.go (0 id ... 13 path). A field
// holding its zero value is not written, and a decoder refuses one that is:
// every event has exactly one encoding.
const (
	codecVersion = 1
	flagEffect   = 1
)

var statusCodes = []string{"", StatusSucceeded, StatusFailed, StatusSkipped, StatusCanceled}

// AppendEvent appends the log encoding of e to dst. e must have passed
// checkEvent (Validate does that); AppendEvent does not check it again.
func AppendEvent(dst []byte, e *Event) []byte {
	t, _ := parseType(e.Type)
	var flags byte
	if e.Effect {
		flags |= flagEffect
	}
	dst = append(dst, codecVersion, byte(t), flags)
	have := presentFields(e)
	for tag := range fieldCount {
		if have&(1<<tag) == 0 {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(tag))
		dst = appendField(dst, e, 1<<tag)
	}
	return dst
}

func appendField(dst []byte, e *Event, bit uint32) []byte {
	switch bit {
	case fID:
		return appendString(dst, e.ID)
	case fTime:
		return binary.AppendVarint(dst, e.Time.UnixNano())
	case fJobID:
		return appendString(dst, e.JobID)
	case fName:
		return appendString(dst, e.Name)
	case fLabels:
		dst = binary.AppendUvarint(dst, uint64(len(e.Labels)))
		for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
			dst = appendString(dst, k)
			dst = appendString(dst, e.Labels[k])
		}
		return dst
	case fSteps:
		dst = binary.AppendUvarint(dst, uint64(len(e.Steps)))
		for _, s := range e.Steps {
			dst = appendString(dst, s)
		}
		return dst
	case fWorker:
		return appendString(dst, e.Worker)
	case fStep:
		return appendString(dst, e.Step)
	case fAttempt:
		return binary.AppendUvarint(dst, uint64(e.Attempt))
	case fStatus:
		return append(dst, byte(slices.Index(statusCodes, e.Status)))
	case fExitCode:
		return binary.AppendVarint(dst, int64(e.ExitCode))
	case fReason:
		return appendString(dst, e.Reason)
	case fWorkspaceID:
		return appendString(dst, e.WorkspaceID)
	default: // fPath
		return appendString(dst, e.Path)
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeEvent decodes one log record's payload. Any deviation from the
// encoding AppendEvent produces, and any value DecodeEvents would refuse,
// is an *InputError naming the field.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if len(b) > maxEventPayload {
		return e, &InputError{Message: fmt.Sprintf("record of %d bytes, more than %d",
			len(b), maxEventPayload)}
	}
	if len(b) < 3 {
		return e, &InputError{Message: "record shorter than its 3-byte header"}
	}
	if b[0] != codecVersion {
		return e, &InputError{Message: fmt.Sprintf("unknown encoding version %d", b[0])}
	}
	t := eventType(b[1])
	if t == 0 || t >= evMax {
		return e, &InputError{Field: "type", Message: fmt.Sprintf("unknown type byte %d", b[1])}
	}
	if b[2]&^flagEffect != 0 {
		return e, &InputError{Message: fmt.Sprintf("unknown flags %#x", b[2])}
	}
	e.Type, e.Effect = typeNames[t], b[2]&flagEffect != 0
	d := decoder{b: b[3:]}
	last := -1
	for len(d.b) > 0 {
		tag := d.uvarint()
		if d.err != nil || tag >= fieldCount || int(tag) <= last {
			return e, &InputError{Message: fmt.Sprintf("bad or out-of-order field tag at byte %d",
				len(b)-len(d.b))}
		}
		last = int(tag)
		name := fieldNames[tag]
		if allowed(t)&(1<<tag) == 0 {
			return e, &InputError{Field: name, Message: "not allowed for " + e.Type}
		}
		d.field(&e, 1<<tag)
		if d.err != nil {
			return e, &InputError{Field: name, Message: d.err.Error()}
		}
		if presentFields(&e)&(1<<tag) == 0 {
			return e, &InputError{Field: name, Message: "zero value written"}
		}
	}
	return e, checkEvent(&e)
}

// decoder reads fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s", msg)
	}
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != varintLen(v) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(max int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail(fmt.Sprintf("string of %d bytes: over the limit or past the end", n))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) field(e *Event, bit uint32) {
	switch bit {
	case fID:
		e.ID = d.str(MaxIDBytes)
	case fTime:
		e.Time = time.Unix(0, d.varint()).UTC()
	case fJobID:
		e.JobID = d.str(MaxIDBytes)
	case fName:
		e.Name = d.str(MaxNameBytes)
	case fLabels:
		d.labels(e)
	case fSteps:
		n := d.uvarint()
		if n == 0 || n > MaxSteps {
			d.fail(fmt.Sprintf("%d steps, want 1 to %d", n, MaxSteps))
			return
		}
		e.Steps = make([]string, 0, n)
		for range n {
			e.Steps = append(e.Steps, d.str(MaxIDBytes))
		}
	case fWorker:
		e.Worker = d.str(MaxNameBytes)
	case fStep:
		e.Step = d.str(MaxIDBytes)
	case fAttempt:
		v := d.uvarint()
		if v > MaxAttempt {
			d.fail("attempt out of range")
		}
		e.Attempt = int(v)
	case fStatus:
		if len(d.b) == 0 || d.b[0] == 0 || int(d.b[0]) >= len(statusCodes) {
			d.fail("bad status byte")
			return
		}
		e.Status, d.b = statusCodes[d.b[0]], d.b[1:]
	case fExitCode:
		v := d.varint()
		if v < minExitCode || v > maxExitCode {
			d.fail("exit_code out of the 32-bit range")
		}
		e.ExitCode = int(v)
	case fReason:
		e.Reason = d.str(MaxReasonBytes)
	case fWorkspaceID:
		e.WorkspaceID = d.str(MaxIDBytes)
	default:
		e.Path = d.str(MaxPathBytes)
	}
}

func (d *decoder) labels(e *Event) {
	n := d.uvarint()
	if n == 0 || n > MaxLabels {
		d.fail(fmt.Sprintf("%d labels, want 1 to %d", n, MaxLabels))
		return
	}
	e.Labels = make(map[string]string, n)
	prev := ""
	for i := range n {
		k, v := d.str(MaxLabelKey), d.str(MaxLabelValue)
		if d.err != nil {
			return
		}
		if i > 0 && k <= prev {
			d.fail("label keys not ascending")
			return
		}
		e.Labels[k], prev = v, k
	}
}

// uvarintLen and varintLen give the length of the shortest encoding of v;
// decoders refuse longer ones, so every value has one encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}
