package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runCLI runs pstatectl with args and returns the exit status and output.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(string) string { return "" }
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb, getenv)
	return code, out.String(), errb.String()
}

// fakeDaemon is an httptest server (loopback only) answering the routes
// given, recording every request body.
type fakeDaemon struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	auth   []string
}

func newFakeDaemon(t *testing.T, routes map[string]http.HandlerFunc) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			f.mu.Lock()
			f.bodies = append(f.bodies, b)
			f.auth = append(f.auth, r.Header.Get("Authorization"))
			f.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
			h(w, r)
		})
	}
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// addr returns the HOST:PORT of the fake daemon.
func (f *fakeDaemon) addr() string { return strings.TrimPrefix(f.URL, "http://") }

// answerJSON writes v as a JSON answer with the given status.
func answerJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// answerError writes the contract's error body.
func answerError(w http.ResponseWriter, status int, code, msg string) {
	answerJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"--bogus", "status"},
		{"status", "--bogus"},
		{"status", "extra"},
		{"job"},
		{"job", "a", "b"},
		{"jobs", "--limit", "-1"},
		{"submit", "--batch", "0"},
		{"submit", "--batch", "1001"},
		{"load", "--jobs", "0", "--duration", "0"},
		{"load", "--steps", "4"},
		{"load", "--fail-rate", "2"},
		{"load", "--addr", "10.1.2.3:7070"},
		{"load", "--run-id", "a b"},
		{"backup"},
		{"restore", "x"},
		{"verify"},
		{"wal"},
		{"wal", "dump"},
	} {
		code, _, stderr := runCLI(t, "", args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
		if !strings.Contains(stderr, "usage") {
			t.Errorf("%q: stderr has no usage: %q", args, stderr)
		}
	}
}

func TestHelpExits0(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "-h"}, "-state"},
		{[]string{"wal", "-h"}, "wal dump -h"},
		{[]string{"wal", "dump", "-h"}, "-from"},
	} {
		code, _, stderr := runCLI(t, "", tc.args...)
		if code != 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, stderr)
		}
	}
}

func TestParseArgsInterspersed(t *testing.T) {
	e := &env{stderr: io.Discard}
	fs := newFlagSet(e, "x", "", "")
	j := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, []string{"a", "--json", "b", "--", "--c"})
	if err != nil || !*j || strings.Join(pos, " ") != "a b --c" {
		t.Fatalf("pos %q json %v err %v", pos, *j, err)
	}
}
