// Package daemontest runs the real pstated binary for tests: it starts the
// process with a NOTIFY_SOCKET of its own (readiness comes as systemd reads
// it), keeps its log, and stops or kills it. The end-to-end tests and the
// fault suite share it.
package daemontest

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

// StartBound bounds a start (READY=1 or death) and a stop. It guards
// against a hang; it is not a measurement.
const StartBound = 2 * time.Minute

// Daemon is one pstated process under test.
type Daemon struct {
	t       testing.TB
	DataDir string
	Sock    string // the API's unix socket, unless the test chose listeners
	Cmd     *exec.Cmd
	Notify  *net.UnixConn // the NOTIFY_SOCKET the daemon writes to
	Client  *http.Client  // over Sock

	mu    sync.Mutex
	cond  *sync.Cond
	lines []string // stderr lines so far
	eof   bool

	exited chan struct{}
	state  *os.ProcessState
}

// ShortDir makes a temporary directory with a short path: a unix socket
// path must fit in 108 bytes.
func ShortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// CleanEnv is the test's environment without PSTATED_ variables and
// systemd's, so that a developer's settings do not leak into a test.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PSTATED_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") &&
			!strings.HasPrefix(kv, "WATCHDOG_") {
			env = append(env, kv)
		}
	}
	return env
}

// Launch starts bin (a pstated) on dataDir with env added to CleanEnv and
// args, and returns without waiting for readiness. Unless args or env give
// listeners, the API listens on Sock; unless args give one, there is no
// metrics listener. The process is killed when the test ends (or when the
// test binary dies), and a data race it reported fails the test.
func Launch(t testing.TB, bin, dataDir string, env []string, args ...string) *Daemon {
	t.Helper()
	dir := ShortDir(t)
	d := &Daemon{t: t, DataDir: dataDir, Sock: filepath.Join(dir, "api.sock"),
		exited: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	notifyPath := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d.Notify = conn
	t.Cleanup(func() { conn.Close() })

	full := append([]string{"--data-dir", dataDir}, args...)
	if !hasFlag(args, "--listen") && !hasEnv(env, "PSTATED_LISTEN") {
		full = append(full, "--listen", "unix:"+d.Sock)
	}
	if !hasFlag(args, "--metrics-listen") {
		full = append(full, "--metrics-listen", "")
	}
	d.Cmd = exec.Command(bin, full...)
	d.Cmd.Env = append(CleanEnv(), "NOTIFY_SOCKET="+notifyPath)
	d.Cmd.Env = append(d.Cmd.Env, env...)
	// A test binary that dies (a timeout) takes the daemon with it.
	d.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := d.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// NB: Wait closes the pipe, so it must come after the last read:
		// the log ends (EOF) when the process exits.
		d.readLog(stderr)
		_ = d.Cmd.Wait()
		d.mu.Lock()
		d.state = d.Cmd.ProcessState
		d.mu.Unlock()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.Kill()
		if strings.Contains(d.Log(), "WARNING: DATA RACE") {
			t.Errorf("pstated reported a data race")
		}
		if t.Failed() {
			t.Logf("pstated log:\n%s", d.Log())
		}
	})
	d.Client = UnixClient(d.Sock)
	t.Cleanup(func() { d.Client.CloseIdleConnections() })
	return d
}

// UnixClient returns an HTTP client over the unix socket sock; any URL
// host reaches it. Its timeout guards against a hang.
func UnixClient(sock string) *http.Client {
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

// Start launches pstated and waits for READY=1.
func Start(t testing.TB, bin, dataDir string, env []string, args ...string) *Daemon {
	t.Helper()
	d := Launch(t, bin, dataDir, env, args...)
	d.WaitReady()
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

func (d *Daemon) readLog(r io.Reader) {
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

// Log returns everything pstated wrote to stderr so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// WaitLine blocks until a JSON log line satisfies match, or the log ends.
func (d *Daemon) WaitLine(match func(map[string]any) bool) (map[string]any, bool) {
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

// RecoveryLine returns the first log line of the start (up to the "ready"
// line, which comes before READY=1) that satisfies match. Call it after
// Start; it never waits for a line that may not come.
func (d *Daemon) RecoveryLine(match func(map[string]any) bool) (map[string]any, bool) {
	var found map[string]any
	_, ready := d.WaitLine(func(m map[string]any) bool {
		if found == nil && match(m) {
			found = m
		}
		return m["msg"] == "ready"
	})
	return found, ready && found != nil
}

// WaitReady reads the notify socket until READY=1; it fails the test when
// the daemon exits first.
func (d *Daemon) WaitReady() {
	d.t.Helper()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		_ = d.Notify.SetReadDeadline(time.Now().Add(StartBound))
		for {
			n, err := d.Notify.Read(buf)
			if err != nil {
				got <- err
				return
			}
			for _, line := range bytes.Split(buf[:n], []byte("\n")) {
				if string(line) == "READY=1" {
					got <- nil
					return
				}
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			d.t.Fatalf("no READY=1 from pstated: %v\n%s", err, d.Log())
		}
	case <-d.exited:
		_ = d.Notify.SetReadDeadline(time.Now()) // end the reader
		<-got
		d.t.Fatalf("pstated exited before READY=1: %v\n%s", d.State(), d.Log())
	}
}

// Addr returns the address a listener of role ("api" or "metrics") and
// network ("unix" or "tcp") got, from its "listening" log line (info
// level, logged before READY=1).
func (d *Daemon) Addr(role, network string) string {
	d.t.Helper()
	m, ok := d.RecoveryLine(func(m map[string]any) bool {
		return m["msg"] == "listening" && m["role"] == role && m["network"] == network
	})
	if !ok {
		d.t.Fatalf("no %s %s listener in the log:\n%s", role, network, d.Log())
	}
	return fmt.Sprint(m["addr"])
}

// Exited is closed once the process has exited and its log is read.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// State is the process's exit state, nil while it runs.
func (d *Daemon) State() *os.ProcessState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Wait waits for the process to exit and returns its exit status.
func (d *Daemon) Wait() int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(StartBound):
		d.t.Fatalf("pstated did not exit\n%s", d.Log())
	}
	return d.State().ExitCode()
}

// Stop sends SIGTERM and returns the exit status.
func (d *Daemon) Stop() int {
	d.t.Helper()
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		select {
		case <-d.exited:
		default:
			d.t.Fatal(err)
		}
	}
	return d.Wait()
}

// Kill sends SIGKILL, unless the process is gone, and waits for its end.
func (d *Daemon) Kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.Cmd.Process.Kill()
	<-d.exited
}

// Build builds each of cmd/<name> into dir, with the race detector when
// race is set.
func Build(dir string, race bool, names ...string) error {
	for _, name := range names {
		args := []string{"build", "-o", filepath.Join(dir, name)}
		if race {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args,
			"github.com/pstate/pstate/cmd/"+name)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}
