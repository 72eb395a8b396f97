package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pstate/pstate/cmd/internal/server"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// fuzzToken is the bearer token of the fuzzed server.
const fuzzToken = "fuzz-token"

// fuzzMethods are the methods a fuzz input picks from by its first byte.
var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"}

// allowedStatus are the answers the contract allows for any request.
var allowedStatus = map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true,
	409: true, 413: true, 503: true, 504: true}

// FuzzHandler sends arbitrary requests (method, path, query string, the
// Authorization header and the body) to the daemon's handler in-process,
// behind the token check as on TCP. Every answer must be a status of the
// contract, never a 500; every error must be a JSON error body with a code
// and a message; the server must stay up and keep answering its probes.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct {
		m          byte
		path, q, a string
		body       []byte
	}{
		{1, "/v1/events", "", "Bearer " + fuzzToken,
			[]byte(`{"type":"job.submitted","id":"e1","job_id":"j1","name":"n","steps":["a"]}`)},
		{0, "/v1/jobs", "state=queued&label=k:v&limit=5&after=j", "Bearer " + fuzzToken, nil},
		{0, "/v1/jobs/j1", "min_seq=99999&wait=1s", "Bearer " + fuzzToken, nil},
		{0, "/v1/workspaces", "limit=-1", "Bearer " + fuzzToken, nil},
		{0, "/v1/status", "", "Bearer wrong", nil},
		{0, "/readyz", "", "", nil},
		{1, "/v1/checkpoint", "", "Bearer " + fuzzToken, nil},
		{0, "/v1/snapshot", "min_seq=abc", "bearer " + fuzzToken, nil},
		{3, "/v1/events", "", "Basic eDp5", []byte("{")},
		{0, "/v1/jobs/%00", "limit=1000000000000000000000", "Bearer " + fuzzToken, nil},
	} {
		f.Add(s.m, s.path, s.q, s.a, s.body)
	}
	srv := server.New(server.Config{DataDir: "/fuzz", FS: vfs.NewMem(), Sync: wal.SyncNone,
		Token: []byte(fuzzToken), MaxWait: 20 * time.Millisecond,
		CheckpointInterval: time.Hour, CheckpointWALBytes: -1,
		Registerer: prometheus.NewRegistry()})
	if err := srv.Open(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close(context.Background()) })
	h := srv.Handler(true)

	f.Fuzz(func(t *testing.T, m byte, path, query, auth string, body []byte) {
		req, ok := fuzzRequest(m, path, query, auth, body)
		if !ok {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, req, rec)

		// The server is still up and writable.
		probe := httptest.NewRecorder()
		h.ServeHTTP(probe, httptest.NewRequest("GET", "/readyz", nil))
		if probe.Code != http.StatusOK {
			t.Fatalf("readyz after %s %s: %d %s", req.Method, req.URL, probe.Code, probe.Body)
		}
	})
}

// fuzzRequest builds a request from fuzz input, or false when the input is
// not something a client could send (net/http would refuse it first).
func fuzzRequest(m byte, path, query, auth string, body []byte) (*http.Request, bool) {
	method := fuzzMethods[int(m)%len(fuzzMethods)]
	u := &url.URL{Path: "/" + strings.TrimLeft(path, "/"), RawQuery: query}
	target := u.RequestURI()
	if strings.ContainsAny(target, " \r\n\x00") || !validHeader(auth) {
		return nil, false
	}
	req, err := http.NewRequest(method, "http://pstate"+target, bytes.NewReader(body))
	if err != nil {
		return nil, false
	}
	req.RequestURI = target
	req.RemoteAddr = "127.0.0.1:1"
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req, true
}

// validHeader reports whether v may be sent as a header value.
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// checkAnswer holds one answer to the contract.
func checkAnswer(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	if !allowedStatus[rec.Code] {
		t.Fatalf("%s %s: status %d (Location %q): %s", req.Method, req.URL, rec.Code,
			rec.Header().Get("Location"), rec.Body)
	}
	if rec.Code == http.StatusOK {
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") &&
			req.Method != "HEAD" && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: 200 with a body that is not JSON: %q", req.Method, req.URL,
				rec.Body)
		}
		return
	}
	if req.Method == "HEAD" {
		return
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" ||
		e.Error.Message == "" {
		t.Fatalf("%s %s: %d without an error body: %q", req.Method, req.URL, rec.Code, rec.Body)
	}
	if rec.Code == http.StatusUnauthorized && req.URL.Path != "/healthz" &&
		rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("%s %s: 401 without WWW-Authenticate", req.Method, req.URL)
	}
}
