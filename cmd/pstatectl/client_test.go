package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientErrorAnswers(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/status": func(w http.ResponseWriter, r *http.Request) {
			answerError(w, http.StatusServiceUnavailable, "read_only", "fsync failed: EIO")
		},
		"POST /v1/events": func(w http.ResponseWriter, r *http.Request) {
			answerJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{
				"code": "conflict", "message": "event 1: job j1 unknown", "index": 1}})
		},
		"GET /v1/jobs/": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "plain text failure", http.StatusBadGateway)
		},
	})
	c, err := NewClient(f.addr(), "", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	_, _, err = c.Get(ctx, "/v1/status", nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != "read_only" ||
		ae.Message != "fsync failed: EIO" || ae.Index != -1 {
		t.Fatalf("status: %#v", err)
	}
	if !strings.Contains(err.Error(), "503 read_only: fsync failed: EIO") {
		t.Errorf("message %q", err)
	}

	_, err = c.Post(ctx, "/v1/events", []byte(`{"events":[]}`))
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Index != 1 {
		t.Fatalf("events: %#v", err)
	}

	_, _, err = c.Get(ctx, "/v1/jobs/x", nil)
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "plain text failure" {
		t.Fatalf("jobs: %#v", err)
	}
}

func TestClientHTTPErrorExit1(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/jobs/{id}": func(w http.ResponseWriter, r *http.Request) {
			answerError(w, http.StatusNotFound, "not_found", "job "+r.PathValue("id")+" not found")
		},
	})
	code, _, stderr := runCLI(t, "", "--addr", f.addr(), "job", "nope")
	if code != 1 || !strings.Contains(stderr, "404 not_found: job nope not found") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestClientConnectionFailureExit1(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, stderr := runCLI(t, "", "--addr", "unix:"+sock, "status")
	if code != 1 || !strings.Contains(stderr, "none.sock") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "--addr", "no-port", "status")
	if code != 1 || !strings.Contains(stderr, "no-port") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestClientUnixSocketAndToken(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var gotAuth string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Pstate-Seq", "42")
		answerJSON(w, 200, map[string]any{"seq": 42})
	})}
	go srv.Serve(ln)
	defer srv.Close()

	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient("unix:"+sock, tok, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, seq, err := c.Get(context.Background(), "/v1/status", nil)
	if err != nil || seq != 42 || gotAuth != "Bearer s3cret" {
		t.Fatalf("seq %d auth %q err %v", seq, gotAuth, err)
	}

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	if _, err := NewClient("unix:"+sock, empty, 2); err == nil {
		t.Fatal("empty token accepted")
	}
}

func TestEnvAddr(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /readyz": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "recovering: replayed 10 of 20", http.StatusServiceUnavailable)
		},
	})
	var out, errb strings.Builder
	getenv := func(k string) string {
		if k == "PSTATE_ADDR" {
			return f.addr()
		}
		return ""
	}
	code := run(context.Background(), []string{"ready"}, strings.NewReader(""), &out, &errb, getenv)
	if code != 1 || !strings.Contains(errb.String(), "recovering: replayed 10 of 20") {
		t.Fatalf("exit %d stderr %q", code, errb.String())
	}
}
