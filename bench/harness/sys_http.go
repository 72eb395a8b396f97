package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pstate/pstate/internal/workload"
)

// httpSys is the real daemon, bin/pstated, on a unix socket in its data
// dir, driven through the HTTP API. Checkpoints run only when asked.
type httpSys struct {
	bin, dir, sock string
	cmd            *exec.Cmd
	exited         chan struct{}
	client         *http.Client
}

func newHTTP(bin, dir string) *httpSys {
	return &httpSys{bin: bin, dir: dir, sock: filepath.Join(dir, "pstated.sock")}
}

func (h *httpSys) Name() string { return "pstate-http" }

func (h *httpSys) start() error {
	h.cmd = exec.Command(h.bin, "--data-dir", h.dir, "--listen", "unix:"+h.sock,
		"--metrics-listen", "", "--sync", "always", "--checkpoint-interval", "1000h",
		"--checkpoint-wal-bytes", strconv.FormatInt(1<<50, 10), "--log-level", "warn")
	logf, err := os.Create(filepath.Join(h.dir, "pstated.log"))
	if err != nil {
		return err
	}
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	// If the harness dies, the kernel kills the daemon too.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start pstated: %w", err)
	}
	h.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); logf.Close(); close(ch) }(h.cmd, h.exited)
	h.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h.sock)
		},
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
	}}
	return nil
}

// ready polls GET /readyz every millisecond until it answers 200.
func (h *httpSys) ready(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			b, _ := os.ReadFile(filepath.Join(h.dir, "pstated.log"))
			return fmt.Errorf("pstated exited: %s", lastLines(string(b), 5))
		default:
		}
		resp, err := h.client.Get("http://pstated/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("pstated not ready in time")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}

// Load seeds the data dir with ls's state as a snapshot, as `pstatectl
// restore` would, and starts the daemon on it.
func (h *httpSys) Load(ctx context.Context, ls *LoadSet) error {
	st, err := buildPstateState(ls)
	if err != nil {
		return err
	}
	if err := seedPstateDir(h.dir, st); err != nil {
		return err
	}
	st = nil
	if err := h.start(); err != nil {
		return err
	}
	return h.ready(10 * time.Minute)
}

func (h *httpSys) do(ctx context.Context, method, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://pstated"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && !(method == http.MethodGet && resp.StatusCode == 404) {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

func (h *httpSys) Submit(ctx context.Context, batch []workload.Event) error {
	body, err := json.Marshal(struct {
		Events []workload.Event `json:"events"`
	}{batch})
	if err != nil {
		return err
	}
	return h.do(ctx, http.MethodPost, "/v1/events", body)
}

func (h *httpSys) Read(ctx context.Context, jobID string) error {
	return h.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(jobID), nil)
}

func (h *httpSys) Checkpoint(ctx context.Context) error {
	return h.do(ctx, http.MethodPost, "/v1/checkpoint", nil)
}

// Footprint reports the daemon's resident memory.
func (h *httpSys) Footprint() (int64, int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	kb, _ := strconv.ParseInt(strings.Fields(firstLine(string(b), "VmRSS:"))[0], 10, 64)
	disk := dirSize(filepath.Join(h.dir, walDir)) + dirSize(filepath.Join(h.dir, snapDir))
	return kb << 10, disk, nil
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	return "0"
}

// Recover kills the daemon with SIGKILL and starts it again; it is back
// once /readyz answers 200 and a first job read succeeds.
func (h *httpSys) Recover(ctx context.Context, firstJob string) (time.Duration, error) {
	h.kill()
	start := time.Now()
	if err := h.start(); err != nil {
		return 0, err
	}
	if err := h.ready(10 * time.Minute); err != nil {
		return 0, err
	}
	if err := h.Read(ctx, firstJob); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (h *httpSys) kill() {
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.exited
	h.cmd = nil
	h.client.CloseIdleConnections()
}

// Close stops the daemon with SIGTERM (it takes a final checkpoint), and
// with SIGKILL if it has not exited within a minute.
func (h *httpSys) Close() error {
	if h.cmd == nil {
		return nil
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
		h.cmd = nil
	case <-time.After(time.Minute):
		h.kill()
	}
	return nil
}
