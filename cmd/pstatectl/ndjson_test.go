package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string, max int) ([]string, []int, error) {
	t.Helper()
	r := newNDJSONReader(strings.NewReader(in), max)
	var evs []string
	var lines []int
	for range 1000 {
		ev, line, err := r.Next()
		if errors.Is(err, io.EOF) {
			return evs, lines, nil
		}
		if err != nil {
			return evs, lines, err
		}
		evs = append(evs, string(ev))
		lines = append(lines, line)
	}
	t.Fatal("reader does not end")
	return nil, nil, nil
}

func TestNDJSONReader(t *testing.T) {
	in := "{\"type\":\"a\", \"x\": 1}\n\n  \r\n{\"type\":\"b\"}\r\n{\"type\":\"c\"}"
	evs, lines, err := readAll(t, in, maxLine)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"type":"a","x":1}`, `{"type":"b"}`, `{"type":"c"}`}
	if strings.Join(evs, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q", evs)
	}
	if lines[0] != 1 || lines[1] != 4 || lines[2] != 5 {
		t.Fatalf("lines %v", lines)
	}
}

func TestNDJSONReaderBadLines(t *testing.T) {
	long := `{"type":"x","pad":"` + strings.Repeat("a", 200) + `"}`
	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"syntax", "{\"type\":\"a\"}\n{\"type\":\n", 2, "invalid event"},
		{"not object", "{\"type\":\"a\"}\n\n[1,2]\n", 3, "not a JSON object"},
		{"no type", "{\"type\":\"a\"}\n{\"job_id\":\"j\"}\n", 2, `no "type"`},
		{"empty type", "{\"type\":\"\"}\n", 1, `no "type"`},
		{"type not string", "{\"type\":3}\n", 1, "invalid event"},
		{"trailing garbage", "{\"type\":\"a\"} x\n", 1, "invalid event"},
		{"too long", "{\"type\":\"a\"}\n" + long + "\n", 2, "longer than 100 bytes"},
		{"too long at eof", long, 1, "longer than 100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(t, tc.in, 100)
			var le *LineError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want line %d with %q", err, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("message %q does not start with the line", err)
			}
		})
	}
}

func TestSubmitBadLineExit1(t *testing.T) {
	f := newFakeDaemon(t, nil)
	code, _, stderr := runCLI(t, "{\"type\":\"a\"}\nnope\n", "--addr", f.addr(), "submit", "-")
	if code != 1 || !strings.Contains(stderr, "line 2:") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

// FuzzReadNDJSON checks that the reader never panics or loops, that every
// event it returns is a compact JSON object with a type, and that line
// numbers grow.
func FuzzReadNDJSON(f *testing.F) {
	f.Add([]byte("{\"type\":\"job.submitted\",\"job_id\":\"j1\"}\n"))
	f.Add([]byte("\n\r\n{\"type\":\"a\"}\r\n{\"type\":\"b\"}"))
	f.Add([]byte("{\"type\":\"a\"}\n[1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newNDJSONReader(bytes.NewReader(data), 64)
		last := 0
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("more events than bytes")
			}
			ev, line, err := r.Next()
			if err != nil {
				var le *LineError
				if !errors.Is(err, io.EOF) && !errors.As(err, &le) {
					t.Fatalf("error of unexpected type: %v", err)
				}
				return
			}
			if line <= last {
				t.Fatalf("line %d after %d", line, last)
			}
			last = line
			var head struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(ev, &head); err != nil || head.Type == "" {
				t.Fatalf("returned %q: %v", ev, err)
			}
			var buf bytes.Buffer
			if json.Compact(&buf, ev); !bytes.Equal(buf.Bytes(), ev) {
				t.Fatalf("not compact: %q", ev)
			}
		}
	})
}
