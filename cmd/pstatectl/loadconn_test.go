package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// connDaemon answers POST /v1/events like the daemon, counting the
// connections it accepted. A body holding "conflict" gets a 409; one
// holding "close" is answered with Connection: close.
func connDaemon(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	var seq atomic.Uint64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		if _, err := body.ReadFrom(r.Body); err != nil || r.URL.Path != "/v1/events" ||
			r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer tok" {
			answerError(w, 400, "bad_request", "unexpected request")
			return
		}
		switch {
		case strings.Contains(body.String(), "conflict"):
			answerError(w, 409, "conflict", "event 0: refused")
			return
		case strings.Contains(body.String(), "close"):
			w.Header().Set("Connection", "close")
		}
		s := seq.Add(1)
		answerJSON(w, 200, map[string]any{"seq": s,
			"results": []map[string]any{{"seq": s, "duplicate": false}}})
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestConnSender(t *testing.T) {
	srv, conns := connDaemon(t)
	tok := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tok, []byte("tok\n"), 0o600)
	c, err := NewClient(strings.TrimPrefix(srv.URL, "http://"), tok, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := newConnSender(c)
	defer s.close()
	ctx := context.Background()

	for i := range 20 {
		res, err := s.send(ctx, []byte(`{"type":"x"}`), 1)
		if err != nil || len(res) != 1 || res[0].Seq != uint64(i+1) {
			t.Fatalf("request %d: %v %v", i, res, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 20 requests, want 1 kept alive", n)
	}

	_, err = s.send(ctx, []byte(`{"type":"conflict"}`), 1)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Message != "event 0: refused" {
		t.Fatalf("409: %v", err)
	}
	if _, err := s.send(ctx, []byte(`{"type":"close"}`), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.send(ctx, []byte(`{"type":"x"}`), 1); err != nil {
		t.Fatal(err)
	}
	// A new connection after the 409 and one after Connection: close.
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.send(cctx, []byte(`{"type":"x"}`), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestConnSenderUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerJSON(w, 200, map[string]any{"seq": 3, "results": []map[string]any{
			{"seq": 2, "duplicate": false}, {"seq": 3, "duplicate": true}}})
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := NewClient("unix:"+sock, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	s := newConnSender(c)
	defer s.close()
	res, err := s.send(context.Background(), []byte(`{"events":[]}`), 2)
	if err != nil || len(res) != 2 || res[1] != (result{Seq: 3, Duplicate: true}) {
		t.Fatalf("%v %v", res, err)
	}
}

func TestConnSenderDaemonGone(t *testing.T) {
	c, err := NewClient("unix:"+filepath.Join(t.TempDir(), "none.sock"), "", 2)
	if err != nil {
		t.Fatal(err)
	}
	s := newConnSender(c)
	if _, err := s.send(context.Background(), []byte(`{}`), 1); err == nil ||
		!strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("err %v", err)
	}
}

// A request in flight ends when its context is cancelled, also on a
// connection that served requests under another context before.
func TestConnSenderCancelInFlight(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var hang atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			arrived <- struct{}{}
			<-release
			return
		}
		answerJSON(w, 200, map[string]any{"seq": 1,
			"results": []map[string]any{{"seq": 1, "duplicate": false}}})
	}))
	defer srv.Close()
	defer close(release)
	s := testSender(t, srv)
	if _, err := s.send(context.Background(), []byte(`{}`), 1); err != nil {
		t.Fatal(err)
	}
	hang.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	if _, err := s.send(ctx, []byte(`{}`), 1); err == nil {
		t.Fatal("a cancelled request in flight succeeded")
	}
}

// testSender returns a connSender to srv, closed when the test ends.
func testSender(t *testing.T, srv *httptest.Server) *connSender {
	t.Helper()
	c, err := NewClient(strings.TrimPrefix(srv.URL, "http://"), "", 2)
	if err != nil {
		t.Fatal(err)
	}
	s := newConnSender(c)
	t.Cleanup(func() {
		s.close()
		c.Close()
	})
	return s
}
