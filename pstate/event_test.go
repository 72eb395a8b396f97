package pstate

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestDecodeEventsOneAndBatch(t *testing.T) {
	one, err := DecodeEvents([]byte(`{"type":"job.submitted","id":"e1","job_id":"j1",
		"name":"build","labels":{"team":"a"},"steps":["fetch","make"],
		"time":"2026-01-02T03:04:05.5+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{Type: TypeJobSubmitted, ID: "e1", JobID: "j1", Name: "build",
		Labels: map[string]string{"team": "a"}, Steps: []string{"fetch", "make"},
		Time: time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC)}
	if len(one) != 1 || !reflect.DeepEqual(one[0], want) {
		t.Fatalf("got %+v\nwant %+v", one, want)
	}
	batch, err := DecodeEvents([]byte(`{"events":[
		{"type":"job.started","job_id":"j1","worker":"w"},
		{"type":"step.finished","job_id":"j1","step":"s","attempt":2,"status":"failed",
		 "exit_code":-3}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != 2 || batch[1].ExitCode != -3 || batch[1].Attempt != 2 {
		t.Fatalf("got %+v", batch)
	}
}

func TestDecodeEventsRefuses(t *testing.T) {
	long := strings.Repeat("x", 129)
	cases := []struct {
		name, body string
		index      int
		field      string
	}{
		{"not json", `{`, 0, ""},
		{"array", `[]`, 0, ""},
		{"no type", `{"job_id":"j"}`, 0, "type"},
		{"unknown type", `{"type":"job.exploded","job_id":"j"}`, 0, "type"},
		{"unknown field", `{"type":"job.purged","job_id":"j","color":"red"}`, 0, "color"},
		{"misplaced field", `{"type":"job.purged","job_id":"j","exit_code":0}`, 0, "exit_code"},
		{"missing field", `{"type":"job.started","job_id":"j"}`, 0, "worker"},
		{"empty string", `{"type":"job.purged","job_id":""}`, 0, "job_id"},
		{"null", `{"type":"job.purged","job_id":null}`, 0, "job_id"},
		{"id too long", `{"type":"job.purged","job_id":"` + long + `"}`, 0, "job_id"},
		{"event id too long", `{"type":"job.purged","job_id":"j","id":"` + long + `"}`, 0, "id"},
		{"bad time", `{"type":"job.purged","job_id":"j","time":"yesterday"}`, 0, "time"},
		{"fraction", `{"type":"step.started","job_id":"j","step":"s","attempt":1.5}`, 0, "attempt"},
		{"exponent", `{"type":"step.started","job_id":"j","step":"s","attempt":1e2}`, 0, "attempt"},
		{"zero attempt", `{"type":"step.started","job_id":"j","step":"s","attempt":0}`, 0, "attempt"},
		{"string number", `{"type":"step.started","job_id":"j","step":"s","attempt":"1"}`, 0,
			"attempt"},
		{"huge exit", `{"type":"step.finished","job_id":"j","step":"s","attempt":1,
			"status":"failed","exit_code":99999999999}`, 0, "exit_code"},
		{"bad status", `{"type":"job.finished","job_id":"j","status":"skipped"}`, 0, "status"},
		{"no steps", `{"type":"job.submitted","job_id":"j","name":"n","steps":[]}`, 0, "steps"},
		{"dup steps", `{"type":"job.submitted","job_id":"j","name":"n","steps":["a","a"]}`, 0,
			"steps"},
		{"label colon", `{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],
			"labels":{"a:b":"c"}}`, 0, "labels"},
		{"control char", `{"type":"job.purged","job_id":"a\u0001b"}`, 0, "job_id"},
		{"bad utf8", "{\"type\":\"job.purged\",\"job_id\":\"a\xffb\"}", 0, "job_id"},
		{"batch index", `{"events":[{"type":"job.purged","job_id":"j"},
			{"type":"job.purged"}]}`, 1, "job_id"},
		{"batch utf8", `{"events":[{"type":"job.purged","job_id":"j"},` +
			"{\"type\":\"job.purged\",\"job_id\":\"\xc3\"}]}", 1, "job_id"},
		{"empty batch", `{"events":[]}`, 0, "events"},
		{"batch extra", `{"events":[{"type":"job.purged","job_id":"j"}],"x":1}`, 0, "x"},
		{"effect", `{"type":"job.purged","job_id":"j","effect":true}`, 0, "effect"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvents([]byte(c.body))
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *InputError", err)
			}
			if ie.Index != c.index || ie.Field != c.field {
				t.Fatalf("index %d field %q (%v), want %d %q", ie.Index, ie.Field, err,
					c.index, c.field)
			}
		})
	}
	big := `{"events":[` + strings.Repeat(`{"type":"job.purged","job_id":"j"},`, 1000) +
		`{"type":"job.purged","job_id":"j"}]}`
	if _, err := DecodeEvents([]byte(big)); err == nil {
		t.Fatal("1001 events accepted")
	}
}

func sampleEvents() []Event {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	return []Event{
		{Type: TypeJobSubmitted, ID: "e1", Time: at, JobID: "j1", Name: "build",
			Labels: map[string]string{"b": "2", "a": ""}, Steps: []string{"x", "y"}},
		{Type: TypeJobStarted, Time: at, JobID: "j1", Worker: "w1"},
		{Type: TypeStepStarted, Time: at, JobID: "j1", Step: "x", Attempt: 1},
		{Type: TypeStepFinished, Time: at, JobID: "j1", Step: "x", Attempt: 1,
			Status: StatusFailed, ExitCode: -2},
		{Type: TypeJobFinished, Time: at, JobID: "j1", Status: StatusCanceled, Reason: "bye"},
		{Type: TypeWorkspaceAllocated, JobID: "j1", WorkspaceID: "w", Path: "/tmp/w"},
		{Type: TypeWorkspaceReleased, Time: at, WorkspaceID: "w", Effect: true},
		{Type: TypeJobPurged, Time: time.Unix(0, -5).UTC(), JobID: "j1", Effect: true},
	}
}

func TestEventCodecRoundTrip(t *testing.T) {
	for _, e := range sampleEvents() {
		b := AppendEvent(nil, &e)
		got, err := DecodeEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, e)
		}
	}
}

func TestDecodeEventRefuses(t *testing.T) {
	good := AppendEvent(nil, &sampleEvents()[3])
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		field  string
	}{
		{"short", func(b []byte) []byte { return b[:2] }, ""},
		{"version", func(b []byte) []byte { b[0] = 9; return b }, ""},
		{"type", func(b []byte) []byte { b[1] = 99; return b }, "type"},
		{"flags", func(b []byte) []byte { b[2] = 4; return b }, ""},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "exit_code"},
		{"unknown tag", func(b []byte) []byte { return append(b, 30) }, ""},
		{"repeated tag", func(b []byte) []byte { return append(b, 10, 2) }, ""},
		{"misplaced", func(b []byte) []byte { return append(b, 13, 1, 'p') }, "path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvent(c.mutate(append([]byte(nil), good...)))
			var ie *InputError
			if !errors.As(err, &ie) || ie.Field != c.field {
				t.Fatalf("err = %v, want *InputError on %q", err, c.field)
			}
		})
	}
}

// FuzzDecodeEvents: the JSON decoder never panics, and what it accepts
// passes checkEvent and survives the log encoding.
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"]}`))
	f.Add([]byte(`{"events":[{"type":"step.finished","job_id":"j","step":"a","attempt":1,` +
		`"status":"succeeded","exit_code":0,"time":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := DecodeEvents(body)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not an *InputError", err, err)
			}
			return
		}
		for i := range events {
			if err := checkEvent(&events[i]); err != nil {
				t.Fatalf("accepted event fails its check: %v", err)
			}
			back, err := DecodeEvent(AppendEvent(nil, &events[i]))
			if err != nil || !eventsEqual(back, events[i]) {
				t.Fatalf("log round trip: %v\n got %+v\nwant %+v", err, back, events[i])
			}
		}
	})
}

// FuzzDecodeEvent: the log decoder never panics, and whatever it accepts
// encodes back to an equal event.
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range sampleEvents() {
		f.Add(AppendEvent(nil, &e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		b2 := AppendEvent(nil, &e)
		e2, err := DecodeEvent(b2)
		if err != nil {
			t.Fatalf("re-encoded event refused: %v", err)
		}
		if !eventsEqual(e, e2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", e2, e)
		}
	})
}

func eventsEqual(a, b Event) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// FuzzCheckString checks checkString's ASCII fast path against the plain
// rule: valid UTF-8, no NUL, and for identifiers no control character.
func FuzzCheckString(f *testing.F) {
	for _, s := range []string{"job-1", "a\x00b", "tab\there", "del\x7f", "ünïcode",
		"\xff\xfe", "日本\x01", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, ident bool) {
		want := utf8.ValidString(s)
		for _, r := range s {
			if r == 0 || (ident && (r < 0x20 || r == 0x7f)) {
				want = false
			}
		}
		if err := checkString("f", s, 1<<20, ident); (err == nil) != want {
			t.Fatalf("checkString(%q, ident %v) = %v, want ok %v", s, ident, err, want)
		}
	})
}
