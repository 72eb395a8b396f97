package pstate

import (
	"bytes"
	"fmt"
	"math/bits"
	"sync"
	"time"
	"unsafe"
)

// DecodeEvents parses a request body: one event object, or {"events": [...]}
// holding 1 to MaxBatchEvents events. It is strict: unknown or misplaced
// fields, missing ones, a field given twice (in an event or in its labels),
// nulls, wrong JSON types, fractional or out-of-range numbers, invalid UTF-8,
// data after the body's value and values over their limits are refused with
// an *InputError naming the event's index and the field; a refusal for bytes
// that are not JSON also gives the byte offset. A \u escape of a surrogate
// that does not pair is refused too (encoding/json made it U+FFFD, so ids
// differing only there read as one). The caller bounds the body's size.
//
// It reads the body in one pass (jsonscan.go), with no tree and no
// recursion. An accepted event costs three allocations or so: its id, one
// string its other text fields share (see settle), and its steps and labels
// when it has them; the slice of events is made once per body.
func DecodeEvents(body []byte) ([]Event, error) {
	s := scanners.Get().(*jsonScanner)
	defer s.release()
	s.b = body
	if s.peek() != '{' {
		return nil, s.wrongType("not a JSON object")
	}
	start := s.pos
	s.pos++
	if s.peek() == '"' {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if string(k) == "events" {
			events, err := decodeBatch(s)
			if err != nil {
				return nil, err
			}
			return events, s.end()
		}
	}
	s.pos = start
	events := make([]Event, 1)
	if err := decodeEvent(s, &events[0]); err != nil {
		return nil, err
	}
	return events, s.end()
}

// scanners keeps scanners with their scratch space between calls.
var scanners = sync.Pool{New: func() any { return new(jsonScanner) }}

// release returns s to the pool, keeping its scratch space unless a large
// body made it grow.
func (s *jsonScanner) release() {
	if cap(s.buf)+cap(s.arena) > 64<<10 || cap(s.refs) > 1024 {
		return
	}
	*s = jsonScanner{buf: s.buf[:0], arena: s.arena[:0], refs: s.refs[:0]}
	scanners.Put(s)
}

// decodeBatch reads the rest of {"events": [...]} after the key, through
// the closing brace.
func decodeBatch(s *jsonScanner) ([]Event, error) {
	s.field = "events"
	if err := s.expect(':'); err != nil {
		return nil, err
	}
	if s.peek() != '[' {
		return nil, s.wrongType("must be an array of events")
	}
	s.pos++
	if s.peek() == ']' {
		return nil, s.fail(fmt.Sprintf("0 events; a batch holds 1 to %d", MaxBatchEvents))
	}
	// Every event is an object: counting the braces sizes the slice in one
	// go (a few too many for labels is cheaper than growing it). No event is
	// shorter than minEventBytes, so braces in strings cannot make it much
	// larger than the body.
	n := bytes.Count(s.b, []byte("{")) - 1
	n = max(min(n, len(s.b)/minEventBytes, MaxBatchEvents), 1)
	events := make([]Event, 0, n)
	for more := true; more; {
		if len(events) == MaxBatchEvents {
			s.index, s.field = 0, "events"
			return nil, s.fail(fmt.Sprintf("more than %d events; a batch holds 1 to %d",
				MaxBatchEvents, MaxBatchEvents))
		}
		s.index, s.field = len(events), ""
		events = append(events, Event{})
		if err := decodeEvent(s, &events[len(events)-1]); err != nil {
			return nil, err
		}
		var err error
		if more, err = s.next(']'); err != nil {
			return nil, err
		}
	}

	s.index, s.field = 0, ""
	more, err := s.next('}')
	if err != nil || !more {
		return events, err
	}
	k, err := s.key()
	if err != nil {
		return nil, err
	}
	return nil, &InputError{Field: string(k), Message: `unknown field beside "events"`}
}

// minEventBytes is the length of the shortest event: {"type":"job.purged",
// "job_id":"j"}.
const minEventBytes = 34

// typeKey marks "type" among the field bits of the keys an event holds.
const typeKey = 1 << 31

// decodeEvent reads one event object and checks it.
func decodeEvent(s *jsonScanner, e *Event) error {
	if s.peek() != '{' {
		return s.wrongType("not a JSON object")
	}
	s.pos++
	s.arena, s.refs = s.arena[:0], s.refs[:0]
	var keys uint32
	more := s.peek() != '}'
	if !more {
		s.pos++
	}
	for more {
		s.field = ""
		k, err := s.key()
		if err != nil {
			return err
		}
		bit := uint32(typeKey)
		if string(k) != "type" {
			if bit = jsonFieldBit(k); bit == 0 {
				return unknownField(s.index, k)
			}
		}
		s.field = fieldName(bit)
		if keys&bit != 0 {
			return s.fail("given twice")
		}
		keys |= bit
		if err := decodeField(s, e, bit); err != nil {
			return err
		}
		s.field = ""
		if more, err = s.next('}'); err != nil {
			return err
		}
	}

	if err := settle(s, e); err != nil {
		return err
	}

	// A zero value (exit_code 0) is present in JSON though not in the
	// Event; refuse misplaced fields by their keys.
	if t, ok := parseType(e.Type); ok {
		if extra := keys &^ typeKey &^ allowed(t); extra != 0 {
			return &InputError{Index: s.index, Field: firstField(extra),
				Message: "not allowed for " + e.Type}
		}
	}
	if err := checkEvent(e); err != nil {
		return setIndex(err, s.index)
	}
	return nil
}

// jsonFieldBit is fieldBit for a key as read, without converting it.
func jsonFieldBit(k []byte) uint32 {
	for i, n := range fieldNames {
		if string(k) == n {
			return 1 << i
		}
	}
	return 0
}

// fieldName names a single field bit, or typeKey.
func fieldName(bit uint32) string {
	if bit == typeKey {
		return "type"
	}
	return fieldNames[bits.TrailingZeros32(bit)]
}

// unknownField refuses a key that names no field.
func unknownField(index int, k []byte) error {
	msg := "unknown field"
	if string(k) == "events" {
		msg = `unknown field of an event; a batch {"events": [...]} holds nothing else`
	}
	return &InputError{Index: index, Field: string(k), Message: msg}
}

// decodeField reads the value of one field, named by its bit (or typeKey),
// into e. It checks what JSON alone decides (types, nulls, empty strings,
// integer ranges, the time's syntax); checkEvent checks the limits after.
// Strings other than the type, the status and the id go to the event's
// arena (see keep) and reach e in settle.
func decodeField(s *jsonScanner, e *Event, bit uint32) error {
	switch bit {
	case fLabels:
		return decodeLabels(s)
	case fSteps:
		return decodeSteps(s)
	case fAttempt:
		n, err := s.int(1, MaxAttempt)
		e.Attempt = n
		return err
	case fExitCode:
		n, err := s.int(minExitCode, maxExitCode)
		e.ExitCode = n
		return err
	}
	v, err := s.text()
	if err != nil {
		return err
	}
	switch bit {
	case typeKey:
		e.Type = internType(v)
	case fStatus:
		e.Status = internStatus(v)
	case fID:
		// The id outlives the event in the window of applied ids; a string
		// of its own keeps the rest of the event's strings from living as
		// long.
		e.ID = string(v)
	case fTime:
		// NB: the string aliases v only for the call: time.Time keeps no
		// reference to it, and the error (which would) is dropped.
		t, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(v), len(v)))
		if err != nil {
			return s.fail("not an RFC 3339 time")
		}
		if t.IsZero() {
			return s.fail("out of range (years 1678 to 2261)")
		}
		e.Time = t.UTC()
	default:
		if stringField(e, bit) == nil {
			panic(fmt.Sprintf("pstate: no decoder for field bit %#x", bit))
		}
		s.keep(bit, v)
	}
	return nil
}

// stringField points at the string field of e that bit names, nil when the
// field is not a plain string.
func stringField(e *Event, bit uint32) *string {
	switch bit {
	case fJobID:
		return &e.JobID
	case fName:
		return &e.Name
	case fWorker:
		return &e.Worker
	case fStep:
		return &e.Step
	case fReason:
		return &e.Reason
	case fWorkspaceID:
		return &e.WorkspaceID
	case fPath:
		return &e.Path
	}
	return nil
}

// settle gives e the strings kept while reading it. They share one
// allocation, which lives as long as the longest-lived of them; an event's
// strings mostly live and die together (a job keeps its job_id, name, steps
// and labels). It refuses a label key given twice.
func settle(s *jsonScanner, e *Event) error {
	if len(s.refs) == 0 {
		return nil
	}
	all := string(s.arena)
	var steps, labels int
	for _, r := range s.refs {
		switch r.bit {
		case fSteps:
			steps++
		case fLabels:
			labels++
		}
	}
	if steps > 0 {
		e.Steps = make([]string, 0, steps)
	}
	if labels > 0 {
		e.Labels = make(map[string]string, labels)
	}
	for _, r := range s.refs {
		v := all[r.off : r.off+r.n]
		switch r.bit {
		case fSteps:
			e.Steps = append(e.Steps, v)
		case fLabels:
			if _, dup := e.Labels[v]; dup {
				return &InputError{Index: s.index, Field: "labels",
					Message: fmt.Sprintf("label %q given twice", v)}
			}
			e.Labels[v] = all[r.voff : r.voff+r.vn]
		default:
			*stringField(e, r.bit) = v
		}
	}
	return nil
}

// internType returns the constant for a known type, so that the common case
// allocates nothing; checkEvent refuses the others.
func internType(v []byte) string {
	for _, n := range typeNames[1:] {
		if string(v) == n {
			return n
		}
	}
	return string(v)
}

// internStatus is internType for statuses.
func internStatus(v []byte) string {
	for _, n := range [...]string{StatusSucceeded, StatusFailed, StatusSkipped,
		StatusCanceled} {
		if string(v) == n {
			return n
		}
	}
	return string(v)
}

// decodeLabels reads an object of strings into the arena; {} reads as no
// labels.
func decodeLabels(s *jsonScanner) error {
	const want = "must be an object of strings"
	if s.peek() != '{' {
		return s.wrongType(want)
	}
	s.pos++
	more := s.peek() != '}'
	if !more {
		s.pos++
	}
	for more {
		k, err := s.key()
		if err != nil {
			return err
		}
		// Keep the key before reading the value: k may alias s.buf.
		s.keep(fLabels, k)
		if s.peek() != '"' {
			if s.isNull() {
				return s.fail(fmt.Sprintf("label %q must not be null", k))
			}
			return s.wrongType(want)
		}
		v, err := s.str()
		if err != nil {
			return err
		}
		s.keepLabelValue(v)
		if more, err = s.next('}'); err != nil {
			return err
		}
	}
	return nil
}

// decodeSteps reads a non-empty array of strings into the arena.
func decodeSteps(s *jsonScanner) error {
	const want = "must be an array of strings"
	if s.peek() != '[' {
		return s.wrongType(want)
	}
	s.pos++
	more := s.peek() != ']'
	if !more {
		s.pos++
		return s.fail("must declare at least one step")
	}
	for more {
		if s.peek() != '"' {
			return s.wrongType(want)
		}
		v, err := s.str()
		if err != nil {
			return err
		}
		s.keep(fSteps, v)
		if more, err = s.next(']'); err != nil {
			return err
		}
	}
	return nil
}
