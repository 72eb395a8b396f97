package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pstate/pstate/internal/daemontest"
)

// TestSubmitAndRead posts a job's life and reads it back with min_seq.
func TestSubmitAndRead(t *testing.T) {
	d := start(t, t.TempDir(), nil, "--sync", "always")

	s := decodeSubmitted(t, d.post("/v1/events", ev("type", "job.submitted", "id", "e1",
		"job_id", "j1", "name", "build", "labels", map[string]string{"team": "a"},
		"steps", []string{"compile"})))
	if s.Seq == 0 || len(s.Results) != 1 || s.Results[0].Seq != s.Seq {
		t.Fatalf("answer %+v", s)
	}
	batch := map[string]any{"events": []any{
		ev("type", "job.started", "job_id", "j1", "worker", "w1"),
		ev("type", "workspace.allocated", "workspace_id", "ws1", "job_id", "j1",
			"path", "/w/1"),
		ev("type", "step.started", "job_id", "j1", "step", "compile", "attempt", 1),
		ev("type", "step.finished", "job_id", "j1", "step", "compile", "attempt", 1,
			"status", "succeeded", "exit_code", 0),
	}}
	s = decodeSubmitted(t, d.post("/v1/events", batch))
	if len(s.Results) != 4 {
		t.Fatalf("answer %+v", s)
	}

	// Read-your-writes: the answer's seq as min_seq.
	a := d.get(fmtQuery("/v1/jobs/j1", "min_seq", s.Seq))
	mustStatus(t, "GET job", a, http.StatusOK)
	if seq, _ := strconv.ParseUint(a.header.Get("Pstate-Seq"), 10, 64); seq < s.Seq {
		t.Fatalf("Pstate-Seq %d < %d", seq, s.Seq)
	}
	job := a.json(t)["job"].(map[string]any)
	// The last step succeeded: the daemon finished the job and released
	// its workspace by itself.
	if job["state"] != "succeeded" {
		t.Fatalf("job %v", job)
	}
	a = d.get("/v1/workspaces/ws1")
	mustStatus(t, "GET workspace", a, http.StatusOK)
	if ws := a.json(t)["workspace"].(map[string]any); ws["state"] != "released" {
		t.Fatalf("workspace %v", ws)
	}

	a = d.get("/v1/jobs?label=team:a&state=succeeded")
	mustStatus(t, "GET jobs", a, http.StatusOK)
	if jobs := a.json(t)["jobs"].([]any); len(jobs) != 1 {
		t.Fatalf("jobs %s", a.body)
	}
	a = d.get("/v1/jobs?label=team:b")
	if jobs := a.json(t)["jobs"].([]any); len(jobs) != 0 {
		t.Fatalf("jobs %s", a.body)
	}

	a = d.get("/v1/status")
	mustStatus(t, "GET status", a, http.StatusOK)
	st := a.json(t)
	for _, k := range []string{"seq", "durable_seq", "jobs", "workspaces", "wal_bytes",
		"last_checkpoint", "sync", "version"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status lacks %q: %s", k, a.body)
		}
	}
	if st["jobs"].(map[string]any)["succeeded"] != 1.0 || st["sync"] != "always" {
		t.Fatalf("status %s", a.body)
	}

	c := d.post("/v1/checkpoint", []byte{})
	mustStatus(t, "POST checkpoint", c, http.StatusOK)
	if cp := c.json(t); cp["seq"].(float64) < float64(s.Seq) || cp["bytes"].(float64) <= 0 {
		t.Fatalf("checkpoint %s", c.body)
	}
	snap := d.get("/v1/snapshot")
	mustStatus(t, "GET snapshot", snap, http.StatusOK)
	if snap.header.Get("Pstate-Seq") == "" || len(snap.body) == 0 {
		t.Fatalf("snapshot: header %v, %d bytes", snap.header, len(snap.body))
	}
}

func fmtQuery(path, key string, v uint64) string {
	return fmt.Sprintf("%s?%s=%d", path, key, v)
}

// TestErrors checks the error answers: 400, 404, 405, 409, 413, 504 and
// duplicates.
func TestErrors(t *testing.T) {
	d := start(t, t.TempDir(), nil, "--sync", "always")
	decodeSubmitted(t, d.post("/v1/events", ev("type", "job.submitted", "id", "x1",
		"job_id", "j1", "name", "n", "steps", []string{"s"})))

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		want   []string // in the message
	}{
		{"malformed JSON", []byte(`{"type":`), 400, "bad_request", nil},
		{"unknown type", ev("type", "job.exploded", "job_id", "j"), 400, "bad_request",
			[]string{"type"}},
		{"bad field in batch", map[string]any{"events": []any{
			ev("type", "job.started", "job_id", "j1", "worker", "w"),
			ev("type", "step.started", "job_id", "j1", "step", "s", "attempt", "one"),
		}}, 400, "bad_request", []string{"event 1", "attempt"}},
		{"unknown job", ev("type", "job.started", "job_id", "nope", "worker", "w"), 409,
			"conflict", []string{"nope"}},
		{"step finished before started", map[string]any{"events": []any{
			ev("type", "job.started", "job_id", "j1", "worker", "w"),
			ev("type", "step.finished", "job_id", "j1", "step", "s", "attempt", 1,
				"status", "succeeded", "exit_code", 0),
		}}, 409, "conflict", []string{"event 1", "j1", "s"}},
		{"body over 1 MiB", bytes.Repeat([]byte(" "), 1<<20+1), 413, "too_large", nil},
		{"over 1000 events", manyEvents(1001), 413, "too_large", []string{"1001"}},
	} {
		a := d.post("/v1/events", tc.body)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, a.status, tc.status, a.body)
			continue
		}
		code, msg := a.errCode(t)
		if code != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, code, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: message %q does not name %q", tc.name, msg, w)
			}
		}
	}

	// The refused batch left nothing behind: the job is still queued.
	a := d.get("/v1/jobs/j1")
	if job := a.json(t)["job"].(map[string]any); job["state"] != "queued" {
		t.Fatalf("a refused batch changed the job: %s", a.body)
	}

	// A duplicate id gets the first seq back and is not applied again.
	first := decodeSubmitted(t, d.post("/v1/events", ev("type", "job.submitted", "id", "dup",
		"job_id", "j2", "name", "n", "steps", []string{"s"})))
	again := decodeSubmitted(t, d.post("/v1/events", ev("type", "job.submitted", "id", "dup",
		"job_id", "j2", "name", "n", "steps", []string{"s"})))
	if !again.Results[0].Duplicate || again.Results[0].Seq != first.Results[0].Seq {
		t.Fatalf("duplicate: first %+v, again %+v", first, again)
	}

	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/jobs/missing", 404, "not_found"},
		{"GET", "/v1/workspaces/missing", 404, "not_found"},
		{"GET", "/v1/nothing", 404, "not_found"},
		{"GET", "/v1/jobs?limit=1001", 400, "bad_request"},
		{"GET", "/v1/jobs?state=sleeping", 400, "bad_request"},
		{"GET", "/v1/jobs?min_seq=abc", 400, "bad_request"},
		{"GET", "/v1/status?min_seq=1000000&wait=50ms", 504, "timeout"},
		{"DELETE", "/v1/jobs", 405, "method_not_allowed"},
	} {
		a, err := do(d.Client, tc.method, "http://pstated"+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != tc.status {
			t.Errorf("%s %s: status %d, want %d: %s", tc.method, tc.path, a.status,
				tc.status, a.body)
			continue
		}
		if code, _ := a.errCode(t); code != tc.code {
			t.Errorf("%s %s: code %q, want %q", tc.method, tc.path, code, tc.code)
		}
	}
}

func manyEvents(n int) map[string]any {
	list := make([]any, n)
	for i := range list {
		list[i] = ev("type", "job.submitted", "job_id", fmt.Sprintf("m%d", i), "name", "n",
			"steps", []string{"s"})
	}
	return map[string]any{"events": list}
}

// TestAuthTCP serves TCP with a token: requests without it or with a wrong
// one are 401, the probes and the unix socket need none.
func TestAuthTCP(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := daemontest.ShortDir(t)
	sock := filepath.Join(dir, "api.sock")
	d := start(t, t.TempDir(), nil, "--listen", "unix:"+sock+",127.0.0.1:0",
		"--auth-token-file", tokenFile)
	base := "http://" + d.Addr("api", "tcp")
	c := &http.Client{}
	defer c.CloseIdleConnections()

	for _, tc := range []struct {
		name, path string
		hdr        []string
		status     int
	}{
		{"no token", "/v1/status", nil, 401},
		{"wrong token", "/v1/status", []string{"Authorization", "Bearer s3cret-tokeN"}, 401},
		{"other scheme", "/v1/status", []string{"Authorization", "Basic s3cret-token"}, 401},
		{"right token", "/v1/status", []string{"Authorization", "Bearer s3cret-token"}, 200},
		{"probe", "/healthz", nil, 200},
		{"readiness", "/readyz", nil, 200},
	} {
		a, err := do(c, "GET", base+tc.path, nil, tc.hdr...)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, a.status, tc.status, a.body)
		}
		if tc.status == 401 {
			if code, _ := a.errCode(t); code != "unauthorized" {
				t.Errorf("%s: code %q", tc.name, code)
			}
		}
	}
	d.Client = daemontest.UnixClient(sock)
	defer d.Client.CloseIdleConnections()
	mustStatus(t, "unix socket without token", d.get("/v1/status"), 200)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode %v, want 0600", perm)
	}
}
