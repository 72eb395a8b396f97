package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/internal/daemontest"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// submitJobs posts n single-step jobs j0..j(n-1) with one event each and
// returns the state's seq after them.
func submitJobs(t *testing.T, d *daemon, prefix string, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		s := decodeSubmitted(t, d.post("/v1/events", ev("type", "job.submitted",
			"id", fmt.Sprintf("%s-e%d", prefix, i), "job_id", fmt.Sprintf("%s%d", prefix, i),
			"name", "n", "steps", []string{"s"})))
		last = s.Seq
	}
	return last
}

// TestSIGTERM: a clean stop exits 0 and leaves a final snapshot holding
// everything and a log with no record; a restart reads it all back.
func TestSIGTERM(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir, nil, "--checkpoint-interval", "1h")
	last := submitJobs(t, d, "j", 50)
	if code := d.Stop(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), `"final checkpoint"`) {
		t.Fatalf("no final checkpoint in the log:\n%s", d.Log())
	}
	snaps, err := checkpoint.List(vfs.OS, filepath.Join(dir, datadir.SnapshotDir))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot after SIGTERM: %v", err)
	}
	if snaps[0].Seq != last {
		t.Fatalf("newest snapshot at seq %d, want %d", snaps[0].Seq, last)
	}
	info, err := wal.Scan(vfs.OS, filepath.Join(dir, datadir.WALDir),
		func(uint64, int64, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != 0 || info.NextSeq != last+1 {
		t.Fatalf("log after a clean stop: %+v; want no record and next seq %d", info, last+1)
	}
	if _, err := os.Stat(d.Sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}

	d2 := start(t, dir, nil)
	a := d2.get("/v1/status")
	mustStatus(t, "status after restart", a, http.StatusOK)
	st := a.json(t)
	if st["seq"].(float64) != float64(last) || st["jobs"].(map[string]any)["queued"] != 50.0 {
		t.Fatalf("status after restart: %s", a.body)
	}
	if lc, ok := st["last_checkpoint"].(map[string]any); !ok || lc["seq"].(float64) != float64(last) {
		t.Fatalf("last_checkpoint after restart: %s", a.body)
	}
	// The new log goes on after the snapshot.
	if s := submitJobs(t, d2, "k", 1); s != last+1 {
		t.Fatalf("first seq after restart %d, want %d", s, last+1)
	}
	if code := d2.Stop(); code != 0 {
		t.Fatalf("second stop: exit %d", code)
	}
}

// TestSecondDaemonRefused: a second pstated on a data dir in use exits 1,
// names the holder's pid and leaves the first one's socket alone.
func TestSecondDaemonRefused(t *testing.T) {
	dir := t.TempDir()
	d := start(t, dir, nil)
	d2 := launch(t, dir, nil, "--listen", "unix:"+d.Sock)
	if code := d2.Wait(); code != 1 {
		t.Fatalf("second daemon: exit %d, want 1\n%s", code, d2.Log())
	}
	pid := strconv.Itoa(d.Cmd.Process.Pid)
	if log := d2.Log(); !strings.Contains(log, "in use") || !strings.Contains(log, "pid "+pid) {
		t.Fatalf("second daemon does not name the holder (pid %s):\n%s", pid, log)
	}
	mustStatus(t, "first daemon after the second", d.get("/healthz"), http.StatusOK)
}

// TestUsage: bad usage exits 2 with a message; a flag wins over its
// PSTATED_ variable; variables are read.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"bad sync", nil, []string{"--sync", "sometimes"}, "--sync"},
		{"unknown flag", nil, []string{"--frobnicate"}, "frobnicate"},
		{"argument", nil, []string{"extra"}, "extra"},
		{"bad env", []string{"PSTATED_SNAPSHOTS_KEEP=many"}, nil, "PSTATED_SNAPSHOTS_KEEP"},
		{"TCP off loopback without a token", nil, []string{"--listen", "0.0.0.0:0"},
			"--auth-token-file"},
	} {
		d := launch(t, t.TempDir(), tc.env, tc.args...)
		if code := d.Wait(); code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", tc.name, code, d.Log())
			continue
		}
		if !strings.Contains(d.Log(), tc.want) {
			t.Errorf("%s: message does not name %q:\n%s", tc.name, tc.want, d.Log())
		}
	}

	// The flag wins over a bad variable; PSTATED_LISTEN is honoured.
	sock := filepath.Join(daemontest.ShortDir(t), "env.sock")
	d := start(t, t.TempDir(), []string{"PSTATED_SYNC=sometimes", "PSTATED_LISTEN=unix:" + sock},
		"--sync", "none")
	d.Client = daemontest.UnixClient(sock)
	defer d.Client.CloseIdleConnections()
	a := d.get("/v1/status")
	mustStatus(t, "status", a, http.StatusOK)
	if got := a.json(t)["sync"]; got != "none" {
		t.Fatalf("sync %v, want the flag's none", got)
	}
	if code := d.Stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestMetrics: every metric of the contract is on /metrics.
func TestMetrics(t *testing.T) {
	d := start(t, t.TempDir(), nil, "--metrics-listen", "127.0.0.1:0")
	submitJobs(t, d, "m", 3)
	mustStatus(t, "checkpoint", d.post("/v1/checkpoint", []byte{}), http.StatusOK)
	resp, err := http.Get("http://" + d.Addr("metrics", "tcp") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, name := range []string{
		"pstate_events_applied_total", "pstate_apply_duration_seconds",
		"pstate_wal_fsync_duration_seconds", "pstate_wal_bytes",
		"pstate_checkpoint_duration_seconds", "pstate_checkpoint_capture_seconds",
		"pstate_wal_truncate_lock_seconds", "pstate_last_checkpoint_seq", "pstate_state_seq",
		"pstate_jobs", "pstate_recovery_duration_seconds",
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(text, "\n# TYPE "+name+" ") {
			t.Errorf("metric %s missing", name)
		}
	}
	for _, line := range []string{
		`pstate_jobs{state="queued"} 3`, `pstate_jobs{state="canceled"} 0`,
		"pstate_events_applied_total 3", "pstate_state_seq 3", "pstate_last_checkpoint_seq 3",
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("no line %q", line)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}
