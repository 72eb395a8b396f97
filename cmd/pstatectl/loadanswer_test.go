package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
		{in: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", bad: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", bad: true},
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

// FuzzReadHead checks the answer reader against net/http's: when both
// take an answer, they agree on its status, its body and where the next
// answer on the connection starts.
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcREST"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nREST"))
	f.Add([]byte("HTTP/1.1 204 No Content\r\n\r\nREST"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		h, err := readHead(br)
		if err != nil {
			return
		}
		body, err := readAnswer(nil, h.body(br))
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		br2 := bufio.NewReader(bytes.NewReader(b))
		resp, err := http.ReadResponse(br2, nil)
		if err != nil || resp.StatusCode < 200 {
			return // net/http hands interim answers to its caller
		}
		body2, err := io.ReadAll(resp.Body)
		if err != nil {
			return
		}
		rest2, _ := io.ReadAll(br2)
		switch {
		case resp.StatusCode != h.status:
			t.Fatalf("%q: status %d, net/http %d", b, h.status, resp.StatusCode)
		case !bytes.Equal(body, body2):
			t.Fatalf("%q: body %q, net/http %q", b, body, body2)
		case !h.close && !resp.Close && !bytes.Equal(rest, rest2):
			t.Fatalf("%q: left %q, net/http %q", b, rest, rest2)
		}
	})
}

// Answers on one kept-alive connection: a chunked one with a trailer, one
// with no body by its status, and one after an interim answer; each leaves
// the next where it starts.
func TestReadHeadSequence(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n" +
			"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n" +
			"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	for _, want := range []struct {
		status int
		body   string
	}{{200, "abc"}, {204, ""}, {200, "ok"}} {
		h, err := readHead(br)
		if err != nil || h.status != want.status || h.close {
			t.Fatalf("head %+v, %v; want status %d, kept alive", h, err, want.status)
		}
		if b, err := readAnswer(nil, h.body(br)); err != nil || string(b) != want.body {
			t.Fatalf("status %d: body %q, %v; want %q", h.status, b, err, want.body)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("bytes left after the last answer")
	}
}

// A chunked answer on a kept-alive connection does not break the next
// request on it.
func TestConnSenderChunkedKeepAlive(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"seq":1,"results":[`)
		w.(http.Flusher).Flush() // forces Transfer-Encoding: chunked
		io.WriteString(w, `{"seq":1,"duplicate":false}]}`+"\n")
	}))
	defer srv.Close()
	s := testSender(t, srv)
	for i := range 3 {
		if res, err := s.send(context.Background(), []byte(`{}`), 1); err != nil || len(res) != 1 {
			t.Fatalf("request %d: %v %v", i, res, err)
		}
	}
}
