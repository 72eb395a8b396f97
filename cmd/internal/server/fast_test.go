package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// twinServers are two Servers with the same history, one behind an
// APIServer and one behind net/http alone: the same requests must get the
// same answers from both.
type twinServers struct {
	api       *APIServer
	plain     string // address of the APIServer
	reference string // address of the net/http server
}

func newTwins(t *testing.T, token []byte) *twinServers {
	t.Helper()
	open := func() *Server {
		s := New(Config{DataDir: "/data", FS: vfs.NewMem(), Sync: wal.SyncAlways,
			Registerer: prometheus.NewRegistry(), Token: token, Version: "test",
			Clock: func() time.Time { return time.Unix(1e9, 0) }})
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	ref := httptest.NewServer(open().Handler(true))
	t.Cleanup(ref.Close)
	api := open().APIServer(true)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- api.Serve(l) }()
	t.Cleanup(func() {
		if err := api.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
	})
	return &twinServers{api: api, plain: l.Addr().String(), reference: ref.Listener.Addr().String()}
}

// exchange writes raw to a new connection to addr and reads n answers.
// It then reports whether the server closed the connection.
func exchange(t *testing.T, addr, raw string, n int) ([]string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []string
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d of %q: %v", len(out)+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k, v := range resp.Header {
			if k != "Date" {
				keys = append(keys, k+"="+strings.Join(v, ","))
			}
		}
		slices.Sort(keys)
		out = append(out, fmt.Sprintf("%d %v close=%v\n%s", resp.StatusCode, keys, resp.Close, body))
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(br)
	if len(rest) > 0 {
		t.Fatalf("bytes after %d answers: %q", n, rest)
	}
	return out, true
}

func post(body string, hdr ...string) string {
	var b strings.Builder
	b.WriteString("POST /v1/events HTTP/1.1\r\nHost: pstate\r\n")
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// TestPlainPathAnswersAsNetHTTP sends the same requests, one connection
// each, to an APIServer and to net/http, and wants the same answers
// (status, headers but Date, body), and the plain ones served without
// net/http.
func TestPlainPathAnswersAsNetHTTP(t *testing.T) {
	tok := "Authorization: Bearer tok"
	x := newTwins(t, []byte("tok"))
	many := `{"events":[` + strings.Repeat(submitJob("m")+",", 1000) + submitJob("m") + `]}`
	cases := []struct {
		name  string
		raw   string
		n     int  // answers
		plain bool // served without net/http
	}{
		{"submit", post(submitJob("a"), tok), 1, true},
		{"duplicate", post(submitJob("a"), tok), 1, true},
		{"conflict", post(`{"type":"job.started","job_id":"nope","worker":"w"}`, tok), 1, true},
		{"bad json", post(`{"type":`, tok), 1, true},
		{"bad event", post(`{"type":"job.submitted"}`, tok), 1, true},
		{"too many", post(many, tok), 1, true},
		{"header case and space", post(submitJob("b"), "AUTHORIZATION:   Bearer tok  ",
			"content-type: application/json", "User-Agent: t", "Accept: */*",
			"Accept-Encoding: gzip", "connection: Keep-Alive"), 1, true},
		{"connection close", post(submitJob("c"), tok, "Connection: close"), 1, true},
		{"pipelined", post(submitJob("d"), tok) + post(submitJob("e"), tok), 2, true},
		{"no token", post(submitJob("f")), 1, false},
		{"wrong token", post(submitJob("f"), "Authorization: Bearer tik"), 1, false},
		{"read", "GET /v1/status HTTP/1.1\r\nHost: p\r\n" + tok + "\r\n\r\n", 1, false},
		{"plain then read", post(submitJob("g"), tok) +
			"GET /v1/jobs/g HTTP/1.1\r\nHost: p\r\n" + tok + "\r\n\r\n", 2, false},
		{"query", strings.Replace(post(submitJob("h"), tok), "events", "events?x=1", 1), 1, false},
		{"http/1.0", strings.Replace(post(submitJob("i"), tok), "1.1", "1.0", 1), 1, false},
		{"other header", post(submitJob("j"), tok, "X-Trace: 1"), 1, false},
		{"no host", strings.Replace(post(submitJob("k"), tok), "Host: pstate\r\n", "", 1),
			1, false},
		{"two lengths", post(submitJob("l"), tok, "Content-Length: 5"), 1, false},
		{"length too big", "POST /v1/events HTTP/1.1\r\nHost: p\r\n" + tok +
			"\r\nContent-Length: 1048577\r\nConnection: close\r\n\r\n{", 1, false},
		{"chunked", "POST /v1/events HTTP/1.1\r\nHost: p\r\n" + tok +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n",
			len(submitJob("n")), submitJob("n")), 1, false},
		{"expect", post(submitJob("o"), tok, "Expect: 100-continue"), 2, false},
		{"bare lf", strings.ReplaceAll(post(submitJob("p"), tok), "\r\n", "\n"), 1, false},
	}
	for _, tc := range cases {
		handed := x.api.handed.Load()
		got, _ := exchange(t, x.plain, tc.raw, tc.n)
		want, _ := exchange(t, x.reference, tc.raw, tc.n)
		if !slices.Equal(got, want) {
			t.Errorf("%s: answers differ\nplain path: %q\nnet/http:   %q", tc.name, got, want)
		}
		if plain := x.api.handed.Load() == handed; plain != tc.plain {
			t.Errorf("%s: served on the plain path %v, want %v", tc.name, plain, tc.plain)
		}
	}
}

// startAPI opens a Server without a token and serves it with an
// APIServer on wrap(a loopback listener); served gets Serve's error.
func startAPI(t *testing.T, wrap func(net.Listener) net.Listener) (
	api *APIServer, l net.Listener, served chan error) {
	t.Helper()
	s := New(Config{DataDir: "/data", FS: vfs.NewMem(), Registerer: prometheus.NewRegistry()})
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	api = s.APIServer(false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served = make(chan error, 1)
	go func() { served <- api.Serve(wrap(l)) }()
	return api, l, served
}

// dialPost opens a connection to addr and writes raw to it; the test's
// end closes it.
func dialPost(t *testing.T, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestShutdownClosesIdleConns: Shutdown ends connections that wait for a
// request at once, without waiting for their idle timeout.
func TestShutdownClosesIdleConns(t *testing.T) {
	api, l, served := startAPI(t, func(l net.Listener) net.Listener { return l })
	c := dialPost(t, l.Addr().String(), post(submitJob("a")))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("answer %v, %v", resp, err)
	}
	resp.Body.Close()
	if err := api.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("serve: %v", err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after shutdown: %d, %v", n, err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("the listener still accepts")
	}
}

// FuzzParsePlainHead: a head parsePlainHead takes for plain is one net/http
// reads the same way: POST /v1/events, the same length, body start,
// Connection and Authorization, and no Transfer-Encoding.
func FuzzParsePlainHead(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzParsePlainHead.
	f.Fuzz(func(t *testing.T, b []byte) {
		h, done := parsePlainHead(b)
		if !done {
			if len(b) >= plainHeadMax {
				t.Fatalf("%d bytes and not done", len(b))
			}
			return
		}
		if !h.plain {
			return
		}
		br := bufio.NewReader(bytes.NewReader(b))
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("plain head net/http refuses: %v", err)
		}
		if req.Method != "POST" || req.URL.Path != eventsPath || req.URL.RawQuery != "" ||
			req.ContentLength != int64(h.bodyLen) || len(req.TransferEncoding) > 0 ||
			req.Close != h.close || req.Header.Get("Authorization") != string(h.auth) ||
			req.Host == "" || req.Header.Get("Expect") != "" {
			t.Fatalf("net/http reads %s %q len %d te %v close %v auth %q host %q; plain %+v",
				req.Method, req.URL, req.ContentLength, req.TransferEncoding, req.Close,
				req.Header.Get("Authorization"), req.Host, h)
		}
		if consumed := len(b) - br.Buffered(); consumed != h.headLen &&
			len(b) > h.headLen && br.Buffered() > 0 {
			t.Fatalf("net/http's head ends at %d, plain at %d", consumed, h.headLen)
		}
		body, _ := io.ReadAll(req.Body)
		if want := b[h.headLen:min(len(b), h.headLen+h.bodyLen)]; !bytes.Equal(body, want) {
			t.Fatalf("body %q, plain %q", body, want)
		}
	})
}

// flakyListener fails its first Accept with EMFILE, as a process out of
// descriptors sees.
type flakyListener struct {
	net.Listener
	failed bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp",
			Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeOutlivesEMFILE: running out of descriptors for a moment does
// not end the serving.
func TestServeOutlivesEMFILE(t *testing.T) {
	api, l, served := startAPI(t, func(l net.Listener) net.Listener {
		return &flakyListener{Listener: l}
	})
	c := dialPost(t, l.Addr().String(), post(submitJob("a")))
	answered := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("answer after EMFILE: %v", err)
		}
	case err := <-served:
		t.Fatalf("serving ended at EMFILE: %v", err)
	}
	if err := api.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("serve: %v", err)
	}
}
