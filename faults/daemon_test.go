package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// startBound bounds a daemon start: it must say READY=1 (or die) within.
// It is a guard against a hang, not a measurement.
const startBound = 2 * time.Minute

// shortDir makes a temporary directory with a short path, for unix
// sockets (at most 108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// daemon is one pstated process under test. Its readiness comes from a
// NOTIFY_SOCKET datagram socket, as systemd reads it; its TCP address from
// its "listening" log line.
type daemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	sock   string // the API's unix socket
	notify *net.UnixConn
	exited chan struct{}
	state  *os.ProcessState

	mu    sync.Mutex
	lines []string
	tcp   chan string // addresses of TCP API listeners, as logged
}

// startDaemon starts pstated on dataDir with the API on a unix socket (and
// whatever args add) and waits for READY=1.
func startDaemon(t *testing.T, dataDir string, args ...string) *daemon {
	t.Helper()
	dir := shortDir(t)
	d := &daemon{t: t, sock: filepath.Join(dir, "api.sock"), exited: make(chan struct{}),
		tcp: make(chan string, 4)}
	notifyPath := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d.notify = conn
	full := append([]string{"--data-dir", dataDir, "--metrics-listen", "",
		"--listen", "unix:" + d.sock}, args...)
	d.cmd = exec.Command(binary(t, "pstated"), full...)
	d.cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+notifyPath)
	// A test binary that dies (a timeout) takes the daemon with it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		d.readLog(stderr)
	}()
	go func() {
		<-logDone
		_ = d.cmd.Wait()
		d.state = d.cmd.ProcessState
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.kill()
		conn.Close()
		if t.Failed() {
			t.Logf("pstated log:\n%s", d.log())
		}
	})
	d.waitReady()
	return d
}

// cleanEnv is the environment without PSTATED_ variables, so that a
// developer's settings do not leak into the tests.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PSTATED_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return env
}

func (d *daemon) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		d.mu.Lock()
		d.lines = append(d.lines, line)
		d.mu.Unlock()
		var l struct {
			Msg, Network, Addr, Role string
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" &&
			l.Network == "tcp" && l.Role == "api" {
			select {
			case d.tcp <- l.Addr:
			default:
			}
		}
	}
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// waitReady reads the notify socket until READY=1; a daemon that exits
// first fails the test.
func (d *daemon) waitReady() {
	d.t.Helper()
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		_ = d.notify.SetReadDeadline(time.Now().Add(startBound))
		for {
			n, err := d.notify.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if bytes.Contains(buf[:n], []byte("READY=1")) {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			d.t.Fatalf("pstated not ready: %v\n%s", err, d.log())
		}
	case <-d.exited:
		d.notify.Close() // ends the reader
		<-ready
		d.t.Fatalf("pstated exited before ready (%v):\n%s", d.state, d.log())
	}
}

// tcpAddr returns the TCP address the API listens on, from its
// "listening" log line (logged at info, before READY=1).
func (d *daemon) tcpAddr() string {
	d.t.Helper()
	select {
	case a := <-d.tcp:
		return a
	case <-d.exited:
		d.t.Fatalf("pstated exited:\n%s", d.log())
	case <-time.After(startBound):
		d.t.Fatalf("pstated logged no TCP listener:\n%s", d.log())
	}
	return ""
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// stop sends SIGTERM and returns the exit status.
func (d *daemon) stop() int {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	return d.state.ExitCode()
}

// client returns an HTTP client over the daemon's unix socket.
func (d *daemon) client() *http.Client {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.sock)
		}}}
	d.t.Cleanup(c.CloseIdleConnections)
	return c
}

// call sends one request and returns the status and body.
func call(t *testing.T, c *http.Client, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// unixURL is the base of URLs sent over the unix socket.
const unixURL = "http://pstated"

func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return fmt.Sprintf("%s: %s", e.Error.Code, e.Error.Message)
}
