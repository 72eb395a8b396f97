package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pstate/pstate/internal/daemontest"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// The offline check and the daemon's start must agree on a damaged data
// dir, through the real binaries: `pstatectl verify` reports a fault where
// `pstated` refuses to start (both naming the same file and offset), and a
// torn tail where it starts after cutting it there.

// finding is one line of `pstatectl verify --json`.
type finding struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Kind   string `json:"kind"`
	Fault  bool   `json:"fault"`
}

// verifyDir runs `pstatectl verify --json` and returns its findings and
// exit status.
func verifyDir(t *testing.T, dir string) ([]finding, int) {
	t.Helper()
	cmd := exec.Command(binary(t, "pstatectl"), "verify", "--json", "--data-dir", dir)
	cmd.Env = daemontest.CleanEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var fs []finding
	for line := range bytes.Lines(out.Bytes()) {
		var f finding
		if json.Unmarshal(line, &f) == nil && f.Kind != "" {
			fs = append(fs, f)
		}
	}
	return fs, code
}

// killedDir makes a data dir holding n single-event records in its log:
// the daemon is killed, so no final checkpoint truncates them away.
func killedDir(t *testing.T, n int) (dir, logFile string, offs []int64) {
	t.Helper()
	dir = t.TempDir()
	d := startDaemon(t, dir, "--checkpoint-interval", "1h", "--log-level", "warn")
	c := d.Client
	for i := range n {
		body := fmt.Sprintf(`{"type":"job.submitted","id":"v%d","job_id":"v%d","name":"n",`+
			`"steps":["a"]}`, i, i)
		if code, b := call(t, c, "POST", unixURL+"/v1/events", "", []byte(body)); code != 200 {
			t.Fatalf("write: %d %s", code, b)
		}
	}
	d.Kill()
	info, err := wal.Scan(vfs.OS, filepath.Join(dir, "wal"),
		func(_ uint64, off int64, _ []byte) error {
			offs = append(offs, off)
			return nil
		})
	if err != nil || len(offs) != n {
		t.Fatalf("scan: %d records, %v", len(offs), err)
	}
	return dir, info.File, offs
}

// startFails runs pstated on dir, which must exit 1, and returns its log.
func startFails(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.StartBound)
	defer cancel()
	sock := filepath.Join(daemontest.ShortDir(t), "api.sock")
	cmd := exec.CommandContext(ctx, binary(t, "pstated"), "--data-dir", dir,
		"--listen", "unix:"+sock, "--metrics-listen", "")
	cmd.Env = daemontest.CleanEnv()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("pstated on a damaged dir: %v, want exit 1:\n%s", err, out)
	}
	return string(out)
}

func TestVerifyAgreesWithStart(t *testing.T) {
	if testing.Short() {
		t.Skip("verify against start: not in -short")
	}
	t.Run("damage", func(t *testing.T) {
		dir, logFile, offs := killedDir(t, 6)
		mid := offs[3]
		flipByte(t, logFile, mid+20)
		fs, code := verifyDir(t, dir)
		if code != 1 || !hasFault(fs, logFile, mid) {
			t.Fatalf("verify: exit %d, findings %+v; want a fault at %s:%d", code, fs,
				logFile, mid)
		}
		log := startFails(t, dir)
		want := fmt.Sprintf(`"file":%q,"offset":%d`, logFile, mid)
		if !strings.Contains(log, want) {
			t.Fatalf("pstated's refusal does not name %s:\n%s", want, log)
		}
	})
	t.Run("torn tail", func(t *testing.T) {
		dir, logFile, offs := killedDir(t, 6)
		last := offs[len(offs)-1]
		if err := os.Truncate(logFile, last+9); err != nil {
			t.Fatal(err)
		}
		fs, code := verifyDir(t, dir)
		if code != 0 || len(fs) != 1 || fs[0].Fault || fs[0].File != logFile ||
			fs[0].Offset != last {
			t.Fatalf("verify of a torn tail: exit %d, findings %+v; want a note at %s:%d",
				code, fs, logFile, last)
		}
		d := startDaemon(t, dir)
		// NB: the log is read as the daemon writes it; RecoveryLine waits
		// for the lines of the start, d.Log() would race them.
		m, ok := d.RecoveryLine(func(m map[string]any) bool { return m["msg"] == "torn log tail cut" })
		if !ok || m["file"] != logFile || m["offset"] != float64(last) {
			t.Fatalf("pstated did not log the cut at %s:%d:\n%s", logFile, last, d.Log())
		}
		code, b := call(t, d.Client, "GET", unixURL+"/v1/status", "", nil)
		if code != 200 || !strings.Contains(string(b), `"seq":5`) {
			t.Fatalf("status after the cut: %d %s", code, b)
		}
	})
}

func hasFault(fs []finding, file string, off int64) bool {
	for _, f := range fs {
		if f.Fault && f.File == file && f.Offset == off {
			return true
		}
	}
	return false
}

func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x5a
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
