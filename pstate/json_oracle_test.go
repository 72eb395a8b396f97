package pstate

// The decoder DecodeEvents replaced: encoding/json into a map of raw
// messages per object, then one json.Unmarshal per field. It stays here,
// unchanged but for its names, as the oracle of FuzzDecodeEventsDiff.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// oldDecodeEvents parses a request body: one event object, or {"events": [...]}
// holding 1 to MaxBatchEvents events. It is strict: unknown or misplaced
// fields, missing ones, nulls, wrong JSON types, fractional or out-of-range
// numbers, invalid UTF-8 and values over their limits are refused with an
// *InputError naming the event's index and the field. The caller bounds the
// body's size.
func oldDecodeEvents(body []byte) ([]Event, error) {
	if !utf8.Valid(body) {
		// Find the field holding the bad bytes below; this catches the rest.
		if err := oldFindBadUTF8(body); err != nil {
			return nil, err
		}
		return nil, &InputError{Message: "invalid UTF-8"}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, &InputError{Message: "not a JSON object: " + oldJSONErrText(err)}
	}
	raw, batch := obj["events"]
	if !batch {
		e, err := oldDecodeEventObject(obj)
		if err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	for k := range obj {
		if k != "events" {
			return nil, &InputError{Field: k, Message: "unknown field beside \"events\""}
		}
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, &InputError{Field: "events", Message: "must be an array of events"}
	}
	if len(list) == 0 || len(list) > MaxBatchEvents {
		return nil, &InputError{Field: "events", Message: fmt.Sprintf(
			"%d events; a batch holds 1 to %d", len(list), MaxBatchEvents)}
	}
	events := make([]Event, len(list))
	for i, r := range list {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(r, &o); err != nil || o == nil {
			return nil, &InputError{Index: i, Message: "not a JSON object"}
		}
		e, err := oldDecodeEventObject(o)
		if err != nil {
			return nil, setIndex(err, i)
		}
		events[i] = e
	}
	return events, nil
}

// oldFindBadUTF8 names the event and field holding invalid UTF-8 by decoding
// the body's structure without converting strings (RawMessage keeps bytes).
func oldFindBadUTF8(body []byte) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return nil
	}
	check := func(i int, o map[string]json.RawMessage) error {
		for k, v := range o {
			if !utf8.ValidString(k) || !utf8.Valid(v) {
				return &InputError{Index: i, Field: k, Message: "invalid UTF-8"}
			}
		}
		return nil
	}
	raw, ok := obj["events"]
	if !ok {
		return check(0, obj)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	for i, r := range list {
		var o map[string]json.RawMessage
		if json.Unmarshal(r, &o) == nil {
			if err := check(i, o); err != nil {
				return err
			}
		}
		// NB: the field is not always found (a duplicate key hides the bad
		// value, or the event is not an object), but the event is.
		if !utf8.Valid(r) {
			return &InputError{Index: i, Message: "invalid UTF-8"}
		}
	}
	return nil
}

// oldDecodeEventObject turns one event's fields into an Event and checks it.
func oldDecodeEventObject(o map[string]json.RawMessage) (Event, error) {
	var e Event
	if t, ok := o["type"]; ok {
		if err := oldJSONString("type", t, &e.Type); err != nil {
			return e, err
		}
	}
	if t, ok := parseType(e.Type); ok {
		// A zero value (exit_code 0) is present in JSON though not in the
		// Event; refuse misplaced fields by their keys.
		for _, k := range slices.Sorted(maps.Keys(o)) {
			if b := fieldBit(k); b != 0 && b&allowed(t) == 0 {
				return e, &InputError{Field: k, Message: "not allowed for " + e.Type}
			}
		}
	}
	// Sorted keys, so that the field an error names does not vary.
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if k == "type" {
			continue
		}
		if err := oldDecodeField(&e, k, o[k]); err != nil {
			return e, err
		}
	}
	if err := checkEvent(&e); err != nil {
		return e, err
	}
	return e, nil
}

func oldDecodeField(e *Event, k string, v json.RawMessage) error {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return &InputError{Field: k, Message: "must not be null"}
	}
	switch k {
	case "id":
		return oldJSONString(k, v, &e.ID)
	case "time":
		var s string
		if err := oldJSONString(k, v, &s); err != nil {
			return err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return &InputError{Field: k, Message: "not an RFC 3339 time"}
		}
		if t.IsZero() {
			return &InputError{Field: k, Message: "out of range (years 1678 to 2261)"}
		}
		e.Time = t.UTC()
	case "job_id":
		return oldJSONString(k, v, &e.JobID)
	case "name":
		return oldJSONString(k, v, &e.Name)
	case "labels":
		if err := json.Unmarshal(v, &e.Labels); err != nil {
			return &InputError{Field: k, Message: "must be an object of strings"}
		}
		if len(e.Labels) == 0 {
			e.Labels = nil
		}
	case "steps":
		if err := json.Unmarshal(v, &e.Steps); err != nil {
			return &InputError{Field: k, Message: "must be an array of strings"}
		}
		if len(e.Steps) == 0 {
			return &InputError{Field: k, Message: "must declare at least one step"}
		}
	case "worker":
		return oldJSONString(k, v, &e.Worker)
	case "step":
		return oldJSONString(k, v, &e.Step)
	case "attempt":
		n, err := oldJSONInt(k, v, 1, MaxAttempt)
		e.Attempt = n
		return err
	case "status":
		return oldJSONString(k, v, &e.Status)
	case "exit_code":
		n, err := oldJSONInt(k, v, minExitCode, maxExitCode)
		e.ExitCode = n
		return err
	case "reason":
		return oldJSONString(k, v, &e.Reason)
	case "workspace_id":
		return oldJSONString(k, v, &e.WorkspaceID)
	case "path":
		return oldJSONString(k, v, &e.Path)
	default:
		return &InputError{Field: k, Message: "unknown field"}
	}
	return nil
}

// oldJSONString decodes a JSON string; an empty one counts as present but is
// refused, so "missing" and "empty" read differently.
func oldJSONString(field string, v json.RawMessage, dst *string) error {
	if err := json.Unmarshal(v, dst); err != nil {
		return &InputError{Field: field, Message: "must be a string"}
	}
	if *dst == "" {
		return &InputError{Field: field, Message: "must not be empty"}
	}
	return nil
}

// oldJSONInt decodes a JSON integer in [lo, hi]; fractions and exponents are
// refused.
func oldJSONInt(field string, v json.RawMessage, lo, hi int) (int, error) {
	s := string(bytes.TrimSpace(v))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if len(s) > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
			return 0, &InputError{Field: field, Message: fmt.Sprintf(
				"must be an integer from %d to %d", lo, hi)}
		}
		return 0, &InputError{Field: field, Message: "must be a number"}
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, &InputError{Field: field, Message: fmt.Sprintf(
			"must be an integer from %d to %d", lo, hi)}
	}
	return int(n), nil
}

func oldJSONErrText(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	return err.Error()
}
