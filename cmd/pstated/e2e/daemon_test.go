package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds a start: the daemon must say READY=1 (or die) within.
const startTimeout = 60 * time.Second

// daemon is one pstated process under test.
type daemon struct {
	t       *testing.T
	dataDir string
	sock    string // the API's unix socket
	cmd     *exec.Cmd
	notify  *net.UnixConn
	client  *http.Client // over sock

	mu    sync.Mutex
	cond  *sync.Cond
	lines []string // stderr lines so far
	eof   bool

	exited chan struct{}
	state  *os.ProcessState
}

// shortDir makes a temporary directory with a short path: a unix socket
// path must fit in 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// launch starts pstated on dataDir with the API on a unix socket in a short
// temporary dir, plus args, and returns without waiting for readiness.
func launch(t *testing.T, dataDir string, env []string, args ...string) *daemon {
	t.Helper()
	dir := shortDir(t)
	d := &daemon{t: t, dataDir: dataDir, sock: filepath.Join(dir, "api.sock"),
		exited: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	notifyPath := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d.notify = conn
	t.Cleanup(func() { conn.Close() })

	full := append([]string{"--data-dir", dataDir, "--log-level", "debug"}, args...)
	if !hasFlag(args, "--listen") && !hasEnv(env, "PSTATED_LISTEN") {
		full = append(full, "--listen", "unix:"+d.sock)
	}
	if !hasFlag(args, "--metrics-listen") {
		full = append(full, "--metrics-listen", "")
	}
	d.cmd = exec.Command(pstatedBin, full...)
	d.cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+notifyPath)
	d.cmd.Env = append(d.cmd.Env, env...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// NB: Wait closes the pipe, so it must come after the last read:
		// the log ends (EOF) when the process exits.
		d.readLog(stderr)
		_ = d.cmd.Wait()
		d.mu.Lock()
		d.state = d.cmd.ProcessState
		d.mu.Unlock()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if strings.Contains(d.log(), "WARNING: DATA RACE") {
			t.Errorf("pstated reported a data race")
		}
		if t.Failed() {
			t.Logf("pstated log:\n%s", d.log())
		}
	})
	d.client = unixClient(d.sock)
	t.Cleanup(d.client.CloseIdleConnections)
	return d
}

// start launches pstated and waits for READY=1.
func start(t *testing.T, dataDir string, env []string, args ...string) *daemon {
	t.Helper()
	d := launch(t, dataDir, env, args...)
	d.waitReady()
	return d
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func hasEnv(env []string, name string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return true
		}
	}
	return false
}

// cleanEnv is the test's environment without PSTATED_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PSTATED_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") &&
			!strings.HasPrefix(kv, "WATCHDOG_") {
			env = append(env, kv)
		}
	}
	return env
}

func (d *daemon) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		d.mu.Lock()
		d.lines = append(d.lines, sc.Text())
		d.cond.Broadcast()
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.eof = true
	d.cond.Broadcast()
	d.mu.Unlock()
}

// log returns everything pstated wrote to stderr so far.
func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// waitLine blocks until a log line satisfies match, or the log ends.
func (d *daemon) waitLine(match func(map[string]any) bool) (map[string]any, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for seen := 0; ; d.cond.Wait() {
		for ; seen < len(d.lines); seen++ {
			var m map[string]any
			if json.Unmarshal([]byte(d.lines[seen]), &m) == nil && match(m) {
				return m, true
			}
		}
		if d.eof {
			return nil, false
		}
	}
}

// recoveryLine returns the first log line of the start (up to the "ready"
// line, which comes before READY=1) that satisfies match. Call it after
// start; it never waits for a line that may not come.
func (d *daemon) recoveryLine(match func(map[string]any) bool) (map[string]any, bool) {
	var found map[string]any
	_, ready := d.waitLine(func(m map[string]any) bool {
		if found == nil && match(m) {
			found = m
		}
		return m["msg"] == "ready"
	})
	return found, ready && found != nil
}

// waitReady reads the notify socket until READY=1; it fails the test when
// the daemon exits first.
func (d *daemon) waitReady() {
	d.t.Helper()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		_ = d.notify.SetReadDeadline(time.Now().Add(startTimeout))
		for {
			n, err := d.notify.Read(buf)
			if err != nil {
				got <- err
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line == "READY=1" {
					got <- nil
					return
				}
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			d.t.Fatalf("no READY=1 from pstated: %v\n%s", err, d.log())
		}
	case <-d.exited:
		_ = d.notify.SetReadDeadline(time.Now()) // end the reader
		<-got
		d.t.Fatalf("pstated exited before READY=1: %v\n%s", d.state, d.log())
	}
}

// addr returns the address a listener of role ("api" or "metrics") and
// network got, from its "listening" log line.
func (d *daemon) addr(role, network string) string {
	d.t.Helper()
	m, ok := d.recoveryLine(func(m map[string]any) bool {
		return m["msg"] == "listening" && m["role"] == role && m["network"] == network
	})
	if !ok {
		d.t.Fatalf("no %s %s listener in the log:\n%s", role, network, d.log())
	}
	return m["addr"].(string)
}

// wait waits for the process to exit and returns its exit status.
func (d *daemon) wait() int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(2 * time.Minute):
		d.t.Fatalf("pstated did not exit\n%s", d.log())
	}
	return d.state.ExitCode()
}

// stop sends SIGTERM and returns the exit status.
func (d *daemon) stop() int {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	return d.wait()
}

// kill sends SIGKILL and waits for the process to die.
func (d *daemon) kill() {
	d.t.Helper()
	_ = d.cmd.Process.Kill()
	<-d.exited
}

func unixClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", sock)
			},
			MaxIdleConnsPerHost: 64,
		},
	}
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
	a, err := do(d.client, "GET", "http://pstated"+path, nil, hdr...)
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
	a, err := do(d.client, "POST", "http://pstated"+path, b, hdr...)
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
