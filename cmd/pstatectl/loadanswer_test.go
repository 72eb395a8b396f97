package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestParseSubmitAnswer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []result // nil: not the daemon's layout
	}{
		{`{"seq":5,"results":[{"seq":5,"duplicate":false}]}` + "\n",
			[]result{{Seq: 5}}},
		{`{"seq":9,"results":[{"seq":3,"duplicate":true},{"seq":9,"duplicate":false}]}`,
			[]result{{Seq: 3, Duplicate: true}, {Seq: 9}}},
		{`{"seq":18446744073709551615,"results":[{"seq":18446744073709551615,"duplicate":false}]}`,
			[]result{{Seq: 1<<64 - 1}}},
		{`{"seq":18446744073709551616,"results":[{"seq":1,"duplicate":false}]}`, nil},
		{`{"seq":5,"results":[]}`, nil},
		{`{"seq":05,"results":[{"seq":5,"duplicate":false}]}`, nil},
		{`{"seq":5, "results":[{"seq":5,"duplicate":false}]}`, nil},
		{`{"seq":5,"results":[{"seq":5,"duplicate":false}]}x`, nil},
		{`{"seq":5,"results":[{"seq":5,"duplicate":fals}]}`, nil},
		{`{"seq":5,"results":[{"seq":5,"duplicate":false},]}`, nil},
	} {
		got, ok := parseSubmitAnswer([]byte(tc.in))
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("parseSubmitAnswer(%s) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
	}
}

// FuzzParseSubmitAnswer checks the fast answer parser against
// encoding/json: whatever it accepts, json.Unmarshal reads the same.
func FuzzParseSubmitAnswer(f *testing.F) {
	f.Add([]byte(`{"seq":5,"results":[{"seq":5,"duplicate":false}]}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseSubmitAnswer(b)
		if !ok {
			return
		}
		var ans submitAnswer
		if err := json.Unmarshal(b, &ans); err != nil {
			t.Fatalf("parsed %q, which encoding/json refuses: %v", b, err)
		}
		if len(got) != len(ans.Results) {
			t.Fatalf("%q: %d results, encoding/json %d", b, len(got), len(ans.Results))
		}
		for i, r := range ans.Results {
			if got[i] != (result{Seq: r.Seq, Duplicate: r.Duplicate}) {
				t.Fatalf("%q: result %d is %v, encoding/json %v", b, i, got[i], r)
			}
		}
	})
}

func TestReadHead(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want answerHead
		body string
		bad  bool
	}{
		{in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\nabcde",
			want: answerHead{status: 200, length: 3}, body: "abc"},
		{in: "HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\nConnection: keep-alive, Close\r\n\r\nxy",
			want: answerHead{status: 409, length: 2, close: true}, body: "xy"},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			want: answerHead{status: 200, length: -1, chunked: true}, body: "abc"},
		{in: "HTTP/1.0 200 OK\nContent-Length: 1\n\nz",
			want: answerHead{status: 200, length: 1, close: true}, body: "z"},
		{in: "HTTP/1.1 200 OK\r\n\r\nto the end",
			want: answerHead{status: 200, length: -1, close: true}, body: "to the end"},
		{in: "HTTP/1.1 2x0 OK\r\n\r\n", bad: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", bad: true},
		{in: "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", bad: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", bad: true},
		{in: "SMTP 220 ready\r\n\r\n", bad: true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		h, err := readHead(br)
		if tc.bad {
			if err == nil {
				t.Errorf("readHead(%q) = %+v, want an error", tc.in, h)
			}
			continue
		}
		if err != nil || h != tc.want {
			t.Errorf("readHead(%q) = %+v, %v; want %+v", tc.in, h, err, tc.want)
			continue
		}
		if b, err := readAnswer(nil, h.body(br)); err != nil || string(b) != tc.body {
			t.Errorf("body of %q = %q, %v; want %q", tc.in, b, err, tc.body)
		}
	}
}

// FuzzReadHead checks the answer head reader against net/http's: when
// both take a head, they agree on the status and the length.
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readHead(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
		if err != nil {
			return
		}
		resp.Body.Close()
		if resp.StatusCode != h.status {
			t.Fatalf("%q: status %d, net/http %d", b, h.status, resp.StatusCode)
		}
		if !h.chunked && h.length >= 0 && resp.ContentLength != h.length {
			t.Fatalf("%q: length %d, net/http %d", b, h.length, resp.ContentLength)
		}
	})
}
