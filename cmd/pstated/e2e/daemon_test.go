package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/pstate/pstate/internal/daemontest"
)

// daemon is one pstated process under test, with this package's helpers.
type daemon struct {
	*daemontest.Daemon
	t *testing.T
}

// launch starts pstated on dataDir, logging at debug level, with env and
// args (see daemontest.Launch), and returns without waiting for readiness.
func launch(t *testing.T, dataDir string, env []string, args ...string) *daemon {
	t.Helper()
	full := append([]string{"--log-level", "debug"}, args...)
	return &daemon{daemontest.Launch(t, pstatedBin, dataDir, env, full...), t}
}

// start launches pstated and waits for READY=1.
func start(t *testing.T, dataDir string, env []string, args ...string) *daemon {
	t.Helper()
	d := launch(t, dataDir, env, args...)
	d.WaitReady()
	return d
}

// answer is a decoded HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %q", a.status, err, a.body)
	}
	return m
}

// errCode returns the code of an error answer.
func (a answer) errCode(t *testing.T) (code, message string) {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(a.body, &b); err != nil || b.Error.Code == "" {
		t.Fatalf("answer %d is not an error body: %q", a.status, a.body)
	}
	return b.Error.Code, b.Error.Message
}

// do sends one request; base is "http://x" for the unix client or
// "http://HOST:PORT".
func do(c *http.Client, method, url string, body []byte, hdr ...string) (answer, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// get and post talk to the daemon's unix socket and fail the test on a
// transport error.
func (d *daemon) get(path string, hdr ...string) answer {
	d.t.Helper()
	a, err := do(d.Client, "GET", "http://pstated"+path, nil, hdr...)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	return a
}

func (d *daemon) post(path string, body any, hdr ...string) answer {
	d.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			d.t.Fatal(err)
		}
	}
	a, err := do(d.Client, "POST", "http://pstated"+path, b, hdr...)
	if err != nil {
		d.t.Fatalf("POST %s: %v", path, err)
	}
	return a
}

// mustStatus fails unless a has the status.
func mustStatus(t *testing.T, what string, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, a.status, status, a.body)
	}
}

// ev builds an event.
func ev(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// submitted is the answer of POST /v1/events.
type submitted struct {
	Seq     uint64 `json:"seq"`
	Results []struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	} `json:"results"`
}

func decodeSubmitted(t *testing.T, a answer) submitted {
	t.Helper()
	mustStatus(t, "POST /v1/events", a, http.StatusOK)
	var s submitted
	if err := json.Unmarshal(a.body, &s); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
	return s
}
