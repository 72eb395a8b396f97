package pstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// oracleDecodeEvents is what DecodeEvents must do: the old decoder, plus
// the three refusals it lacked and DecodeEvents makes on purpose.
//
//   - A key given twice in one object: encoding/json keeps the last value,
//     so {"job_id":"a","job_id":"b"} was read as job "b", and a bad first
//     value (null, a number) was never looked at. DecodeEvents refuses it,
//     naming the field.
//   - A null label value: encoding/json leaves a string untouched on null,
//     so {"labels":{"a":null}} was read as the label a="", though null is
//     refused everywhere else. DecodeEvents refuses it, naming "labels".
//   - A \u escape of a surrogate that does not pair: encoding/json made it
//     U+FFFD, so job ids "\ud800" and "\udc00" were the same job.
//     DecodeEvents refuses it, naming the field.
func oracleDecodeEvents(body []byte) ([]Event, error) {
	if reason := stricterRefusal(body); reason != "" {
		return nil, &InputError{Message: reason}
	}
	if unpairedSurrogate(body) {
		return nil, &InputError{Message: "unpaired surrogate"}
	}
	return oldDecodeEvents(body)
}

// unpairedSurrogate reports whether a string in body holds a \u escape of
// a surrogate not followed by the escape of its other half.
func unpairedSurrogate(body []byte) bool {
	in := false
	for i := 0; i < len(body); i++ {
		switch {
		case body[i] == '"':
			in = !in
		case in && body[i] == '\\':
			r, ok := hex4(body, i)
			if !ok {
				i++ // skip the escaped byte
				continue
			}
			if utf16.IsSurrogate(r) {
				r2, ok := hex4(body, i+6)
				if !ok || utf16.DecodeRune(r, r2) == utf8.RuneError {
					return true
				}
				i += 6
			}
			i += 5
		}
	}
	return false
}

// stricterRefusal walks the tokens of body and reports a duplicate key in
// any object or a null in any object under a "labels" key; "" when neither
// is there (or the body is not JSON, which the old decoder refuses itself).
func stricterRefusal(body []byte) string {
	type frame struct {
		obj     bool
		wantKey bool
		key     string          // the last key read, for objects
		in      string          // the key this object or array is the value of
		keys    map[string]bool // made on the first key
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		n := len(stack)
		if n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			if k, ok := tok.(string); ok {
				top := stack[n-1]
				if top.keys[k] {
					return "key " + k + " given twice"
				}
				if top.keys == nil {
					top.keys = map[string]bool{}
				}
				top.keys[k], top.key, top.wantKey = true, k, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			f := &frame{obj: tok == json.Delim('{'), wantKey: true}
			if n > 0 && stack[n-1].obj {
				f.in = stack[n-1].key
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:n-1]
		case nil:
			if n > 0 && stack[n-1].obj && stack[n-1].in == "labels" {
				return "null label value"
			}
		}
		if m := len(stack); m > 0 && stack[m-1].obj {
			stack[m-1].wantKey = true
		}
	}
}

// FuzzDecodeEventsDiff feeds the same bytes to DecodeEvents and to the
// oracle: both accept or both refuse, and what they accept is equal.
// Bodies over 16 KiB are left to the tests: the oracle takes milliseconds
// on deep nesting and would starve the fuzzer, and length adds no new path
// to a decoder that never recurses.
func FuzzDecodeEventsDiff(f *testing.F) {
	for _, c := range diffCases {
		if len(c) <= maxFuzzBody {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxFuzzBody {
			return
		}
		checkDiff(t, body)
	})
}

const maxFuzzBody = 16 << 10

func checkDiff(t *testing.T, body []byte) {
	t.Helper()
	got, err := DecodeEvents(body)
	want, werr := oracleDecodeEvents(body)
	if err != nil {
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Fatalf("error %T %v is not an *InputError", err, err)
		}
	}
	switch {
	case err != nil && werr == nil:
		t.Fatalf("refused what the oracle accepts: %v\nbody %q", err, body)
	case err == nil && werr != nil:
		t.Fatalf("accepted what the oracle refuses (%v): %+v\nbody %q", werr, got, body)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("events differ\n got %+v\nwant %+v\nbody %q", got, want, body)
	}
}

// diffCases seed FuzzDecodeEventsDiff and run in TestDecodeEventsDiff.
var diffCases = []string{
	`{"type":"job.submitted","id":"e1","time":"2026-01-02T03:04:05.123456789+01:00",` +
		`"job_id":"j1","name":"build","labels":{"team":"a","env":"prod"},` +
		`"steps":["fetch","make","test"]}`,
	`{"type":"job.started","job_id":"j1","worker":"w-1"}`,
	`{"type":"step.started","job_id":"j1","step":"make","attempt":1}`,
	`{"type":"step.finished","job_id":"j1","step":"make","attempt":3,"status":"failed",` +
		`"exit_code":-2147483648}`,
	`{"type":"step.finished","job_id":"j1","step":"make","attempt":1,"status":"skipped",` +
		`"exit_code":-0}`,
	`{"type":"job.finished","job_id":"j1","status":"canceled","reason":"by user"}`,
	`{"type":"workspace.allocated","workspace_id":"ws","job_id":"j1","path":"/tmp/w"}`,
	`{"type":"workspace.released","workspace_id":"ws","time":"2026-01-01T00:00:00Z"}`,
	`{"type":"job.purged","job_id":"j1"}`,
	" \t\r\n{ \"type\" : \"job.purged\" , \"job_id\" : \"j\" } \n",
	`{"events":[{"type":"job.started","job_id":"j1","worker":"w"},` +
		`{"type":"step.started","job_id":"j1","step":"s","attempt":2}]}`,
	`{"events":[]}`,
	`{"events":null}`,
	`{"events":[null]}`,
	`{"events":{}}`,
	`{"events":[{"type":"job.purged","job_id":"j"}],"x":1}`,
	`{"x":1,"events":[{"type":"job.purged","job_id":"j"}]}`,
	`{"type":"job.purged","job_id":"j","events":[]}`,
	`{"events":[{"type":"job.purged","job_id":"j"}]}garbage`,
	`{"type":"job.purged","job_id":"j"} {}`,
	`{"type":"job.purged","job_id":"j"}}`,
	`null`, `[]`, `{}`, ``, `"x"`, `{"type":null}`, `{"type":""}`,
	// escapes and surrogates
	`{"type":"job.purged","job_id":"a\"\\\/\b\f\n\r\tb"}`,
	`{"type":"job.purged","job_id":"\u006a\u00e9\u4e2d\ud83d\ude00"}`,
	`{"type":"job.finished","job_id":"j","status":"failed","reason":"\ud800"}`,
	`{"type":"job.finished","job_id":"j","status":"failed","reason":"\udc00\ud800x"}`,
	`{"type":"job.finished","job_id":"j","status":"failed","reason":"\ud800\u0041"}`,
	`{"type":"job.finished","job_id":"j","status":"failed","reason":"\ud800\ud800\udc00"}`,
	`{"type":"job.finished","job_id":"j","status":"failed","reason":"\ud800\u00zz"}`,
	`{"type":"job.finished","job_id":"j","status":"failed","reason":"\ud83D\uDE00"}`,
	`{"type":"job.purged","job_id":"a\u0000"}`,
	`{"type":"job.purged","job_id":"a\x"}`,
	`{"type":"job.purged","job_\u0069d":"j"}`,
	`{"ty\u0070e":"job.purged","job_id":"j"}`,
	`{"\u0065vents":[{"type":"job.purged","job_id":"j"}]}`,
	`{"type":"job.\u0070urged","job_id":"j"}`,
	`{"type":"step.finished","job_id":"j","step":"s","attempt":1,"status":"f\u0061iled"}`,
	"{\"type\":\"job.purged\",\"job_id\":\"a\xffb\"}",
	"{\"type\":\"job.purged\",\"job_id\":\"a\xed\xa0\x80\"}",
	"{\"type\":\"job.purged\",\"job_id\":\"\xef\xbf\xbd\"}",
	"{\"type\":\"job.purged\",\"job_id\":\"a\tb\"}",
	"{\"type\":\"job.purged\",\"\xff\":1,\"job_id\":\"j\"}",
	"{\"type\":\"job.submitted\",\"job_id\":\"j\",\"name\":\"n\",\"steps\":[\"a\"]," +
		"\"labels\":{\"k\":\"\xc3\"}}",
	// duplicates and nulls
	`{"type":"job.purged","job_id":"a","job_id":"b"}`,
	`{"type":"job.purged","job_id":null,"job_id":"b"}`,
	`{"type":"job.purged","type":"job.purged","job_id":"b"}`,
	`{"events":[{"type":"job.purged","job_id":"j"}],"events":[{"type":"job.purged","job_id":"k"}]}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],"labels":{"a":"1","a":"2"}}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],"labels":{"a":null}}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":["a",null]}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],"labels":{}}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],"labels":null}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":[]}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":"a"}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":[["a"]]}`,
	`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],"labels":{"a":{"b":"c"}}}`,
	`{"type":"job.purged","job_id":"j","effect":true}`,
	`{"type":"job.purged","job_id":"j","effect":false}`,
	`{"type":"job.purged","job_id":"j","exit_code":0}`,
	`{"type":"job.purged","job_id":"j","time":"2026-01-01T00:00:00"}`,
	`{"type":"job.purged","job_id":"j","time":"0001-01-01T00:00:00Z"}`,
	`{"type":"job.purged","job_id":"j","time":"2026-13-01T00:00:00Z"}`,
	`{"type":"job.purged","job_id":"j","time":"2026-01-01t00:00:00z"}`,
	`{"type":"job.purged","job_id":"j","time":"2026-01-01T00:00:00.Z"}`,
	`{"type":"job.purged","job_id":"j","time":"2026-01-01T24:00:00Z"}`,
	`{"type":"job.purged","job_id":"j","time":"2026-01-01T00:00:00+24:00"}`,
	`{"type":"job.purged","job_id":"j","time":"2026-01-01T00:00:60Z"}`,
	`{"type":"job.purged","job_id":"j","time":"1677-12-31T23:59:59Z"}`,
	`{"type":"job.purged","job_id":"j","time":12}`,
	// numbers
	`{"type":"step.started","job_id":"j","step":"s","attempt":1000}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1001}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":01}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":-1}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":-}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1.0}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1.}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1e0}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1E+0}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":true}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":"1"}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1x}`,
	`{"type":"step.started","job_id":"j","step":"s","attempt":1e400}`,
	`{"type":"step.finished","job_id":"j","step":"s","attempt":1,"status":"failed",` +
		`"exit_code":2147483648}`,
	`{"type":"step.finished","job_id":"j","step":"s","attempt":1,"status":"failed",` +
		`"exit_code":-2147483649}`,
	`{"type":"step.finished","job_id":"j","step":"s","attempt":1,"status":"failed",` +
		`"exit_code":` + strings.Repeat("9", 5000) + `}`,
	// nesting
	`{"type":"job.purged","job_id":"j","x":` + strings.Repeat("[", 64) +
		strings.Repeat("]", 64) + `}`,
	`{"type":"job.purged","job_id":"j","x":` + strings.Repeat("[", 20000) +
		strings.Repeat("]", 20000) + `}`,
	`{"events":[` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `]}`,
	strings.Repeat(`{"a":`, 50) + `1` + strings.Repeat("}", 50),
	strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat("}", 5000),
	strings.Repeat("[", 100000),
}

// TestDecodeEventsDiff runs the seeds also when fuzzing is off, and checks
// the oracle's two extra refusals do refuse.
func TestDecodeEventsDiff(t *testing.T) {
	for _, c := range diffCases {
		checkDiff(t, []byte(c))
	}
	for _, c := range []string{
		`{"type":"job.purged","job_id":"a","job_id":"b"}`,
		`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],"labels":{"a":null}}`,
	} {
		if _, err := oldDecodeEvents([]byte(c)); err != nil {
			t.Fatalf("the old decoder refuses %s: %v", c, err)
		}
		if stricterRefusal([]byte(c)) == "" {
			t.Fatalf("the oracle accepts %s", c)
		}
	}
	for _, c := range []string{`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `"\ud83d\ud83d"`,
		`"\\\ud800"`, `"\ud800\\udc00"`} {
		if !unpairedSurrogate([]byte(c)) {
			t.Fatalf("no unpaired surrogate found in %s", c)
		}
	}
	for _, c := range []string{`"\ud83d\ude00"`, `"\\ud800"`, `"\uD83D\uDE00\u00e9"`, `"\\"`} {
		if unpairedSurrogate([]byte(c)) {
			t.Fatalf("an unpaired surrogate found in %s", c)
		}
	}
}

func TestDecodeEventsStrict(t *testing.T) {
	cases := []struct {
		name, body string
		index      int
		field, msg string
	}{
		{"dup field", `{"type":"job.purged","job_id":"a","job_id":"b"}`, 0, "job_id",
			"given twice"},
		{"dup escaped", `{"type":"job.purged","job_id":"a","job\u005fid":"b"}`, 0, "job_id",
			"given twice"},
		{"dup type", `{"type":"job.purged","job_id":"a","type":"job.purged"}`, 0, "type",
			"given twice"},
		{"dup label", `{"events":[{"type":"job.purged","job_id":"j"},{"type":"job.submitted",` +
			`"job_id":"j","name":"n","steps":["a"],"labels":{"a":"1","a":"2"}}]}`, 1, "labels",
			`label "a" given twice`},
		{"null label", `{"type":"job.submitted","job_id":"j","name":"n","steps":["a"],` +
			`"labels":{"a":null}}`, 0, "labels", "must not be null"},
		{"dup events", `{"events":[{"type":"job.purged","job_id":"j"}],"events":[]}`, 0,
			"events", `beside "events"`},
		{"syntax offset", `{"type":"job.purged","job_id":"j" "x"}`, 0, "", "at byte 34"},
		{"trailing", `{"type":"job.purged","job_id":"j"}x`, 0, "", "at byte 34"},
		{"bad utf8 offset", "{\"type\":\"job.purged\",\"job_id\":\"ab\xff\"}", 0, "job_id",
			"invalid UTF-8 at byte 33"},
		{"utf8 in steps", `{"events":[{"type":"job.purged","job_id":"j"},` +
			"{\"type\":\"job.submitted\",\"job_id\":\"j\",\"name\":\"n\",\"steps\":[\"\xc0\"]}]}",
			1, "steps", "invalid UTF-8"},
		{"huge number", `{"type":"step.started","job_id":"j","step":"s","attempt":` +
			strings.Repeat("1", 1<<20) + `}`, 0, "attempt", "from 1 to 1000"},
		{"deep", `{"events":[{"type":"job.purged","job_id":"j"},{"labels":` +
			strings.Repeat("[", 1<<20), 1, "labels", "object of strings"},
		{"batch too long", `{"events":[` + strings.Repeat(`{"type":"job.purged","job_id":"j"},`,
			MaxBatchEvents) + `{}]}`, 0, "events", "more than 1000"},
		{"events in event", `{"type":"job.purged","events":[]}`, 0, "events", "a batch"},
		{"lone surrogate", `{"type":"job.purged","job_id":"ab\udc00"}`, 0, "job_id",
			`unpaired surrogate \udc00 at byte 33`},
		{"surrogate in key", `{"type":"job.purged","\ud800":"j"}`, 0, "",
			"unpaired surrogate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvents([]byte(c.body))
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *InputError", err)
			}
			if ie.Index != c.index || ie.Field != c.field || !strings.Contains(ie.Message, c.msg) {
				t.Fatalf("got %v, want event %d field %q saying %q", err, c.index, c.field, c.msg)
			}
		})
	}
}

func TestDecodeEventsEscapes(t *testing.T) {
	body := `{"type":"job.finished","job_id":"j\u00e9\ud83d\ude00","status":"failed",` +
		`"reason":"\uD83D\uDE00|\u0041|\/\"\\\b\f\n\r\t|\ufffd"}`
	got, err := DecodeEvents([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].JobID != "jé😀" {
		t.Fatalf("job_id %q", got[0].JobID)
	}
	if want := "😀|A|/\"\\\b\f\n\r\t|\ufffd"; got[0].Reason != want {
		t.Fatalf("reason %q, want %q", got[0].Reason, want)
	}
	for _, bad := range []string{`\ud800`, `\udc00`, `\ud800\u0041`, `\udc00\ud800`,
		`\ud83d\ud83d\ude00`, `\ud800\u00zz`, `\ud800\\u0041`} {
		body := `{"type":"job.finished","job_id":"j","status":"failed","reason":"x` + bad + `"}`
		_, err := DecodeEvents([]byte(body))
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != "reason" {
			t.Fatalf("%s: err = %v, want a refusal of field reason", bad, err)
		}
	}
}

// TestDecodeEventsOwnsStrings checks that decoded events share no memory
// with the body or with the scratch space of later calls.
func TestDecodeEventsOwnsStrings(t *testing.T) {
	body := []byte(diffCases[0])
	got, err := DecodeEvents(body)
	if err != nil {
		t.Fatal(err)
	}
	want, err := oldDecodeEvents([]byte(diffCases[0]))
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X'
	}
	for _, c := range diffCases {
		DecodeEvents([]byte(c))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events changed after the body and later calls\n got %+v\nwant %+v", got, want)
	}
}

// TestDecodeEventsBoundedWork checks that a refusal of a huge number or of
// deep nesting allocates a small constant: its error and, when the pool is
// empty (the race detector empties it at random, so the exact count varies
// between 4 and 7), a scanner; never anything that grows with the input's
// million digits or levels.
func TestDecodeEventsBoundedWork(t *testing.T) {
	for _, body := range []string{
		`{"type":"step.started","job_id":"j","step":"s","attempt":` +
			strings.Repeat("9", 1<<20) + `}`,
		`{"type":"job.purged","job_id":"j","labels":` + strings.Repeat(`{"a":`, 1<<18),
		`{"events":[` + strings.Repeat("[", 1<<20),
	} {
		b := []byte(body)
		if _, err := DecodeEvents(b); err == nil {
			t.Fatalf("accepted %.60s...", body)
		}
		if n := testing.AllocsPerRun(10, func() { DecodeEvents(b) }); n > 16 {
			t.Fatalf("%.60s...: %v allocations", body, n)
		}
	}
}
