package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pstate/pstate/internal/daemontest"
)

// The kill -9 loop: the real pstated under `pstatectl load --record`,
// checkpointing often, killed with SIGKILL at a random moment of the load,
// restarted. After each restart every event the load generator recorded as
// answered (in every round so far) is sent again: each must come back as a
// duplicate with the seq it was answered with, and the daemon's seq must
// not have gone back. At the end a clean stop exits 0 and `pstatectl
// verify` finds the data dir sound.

// recorded is one line of a --record file.
type recorded struct {
	ID          string `json:"id"`
	Seq         uint64 `json:"seq"`
	Type        string `json:"type"`
	JobID       string `json:"job_id"`
	WorkspaceID string `json:"workspace_id"`
}

// readRecord reads a --record file. A last line without its newline (the
// writer died in the middle of it) is not an answer yet and is skipped.
func readRecord(t *testing.T, path string) []recorded {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		b = b[:i+1]
	}
	var out []recorded
	for line := range bytes.Lines(b) {
		var r recorded
		if err := json.Unmarshal(line, &r); err != nil || r.ID == "" || r.Seq == 0 {
			t.Fatalf("bad record line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// resend builds an event of the recorded type with the recorded id: the
// daemon answers it by its id as a duplicate before it looks at the rest.
func resend(r recorded) map[string]any {
	e := map[string]any{"type": r.Type, "id": r.ID}
	job := r.JobID
	if job == "" {
		job = "j"
	}
	switch r.Type {
	case "job.submitted":
		e["job_id"], e["name"], e["steps"] = job, "resent", []string{"s"}
	case "job.started":
		e["job_id"], e["worker"] = job, "w"
	case "step.started":
		e["job_id"], e["step"], e["attempt"] = job, "s", 1
	case "step.finished":
		e["job_id"], e["step"], e["attempt"] = job, "s", 1
		e["status"], e["exit_code"] = "succeeded", 0
	case "job.finished":
		e["job_id"], e["status"] = job, "succeeded"
	case "workspace.allocated":
		e["workspace_id"], e["job_id"], e["path"] = r.WorkspaceID, job, "/w"
	case "workspace.released":
		e["workspace_id"] = r.WorkspaceID
	case "job.purged":
		e["job_id"] = job
	}
	return e
}

// checkAnswered resends every recorded event and checks each comes back a
// duplicate at its seq; it returns how many it checked.
func checkAnswered(t *testing.T, d *daemon, recs []recorded) int {
	t.Helper()
	c := d.Client
	var maxSeq uint64
	for start := 0; start < len(recs); start += 1000 {
		part := recs[start:min(start+1000, len(recs))]
		evs := make([]map[string]any, len(part))
		for i, r := range part {
			evs[i] = resend(r)
			maxSeq = max(maxSeq, r.Seq)
		}
		body, _ := json.Marshal(map[string]any{"events": evs})
		code, b := call(t, c, "POST", unixURL+"/v1/events", "", body)
		if code != 200 {
			t.Fatalf("resend of %d answered events: %d %s", len(part), code, b)
		}
		var ans struct {
			Results []struct {
				Seq       uint64 `json:"seq"`
				Duplicate bool   `json:"duplicate"`
			} `json:"results"`
		}
		if err := json.Unmarshal(b, &ans); err != nil || len(ans.Results) != len(part) {
			t.Fatalf("resend answer %s: %v", b, err)
		}
		for i, r := range ans.Results {
			if !r.Duplicate || r.Seq != part[i].Seq {
				t.Fatalf("answered event %s (seq %d) LOST: resent, got seq %d duplicate %v",
					part[i].ID, part[i].Seq, r.Seq, r.Duplicate)
			}
		}
	}
	code, b := call(t, c, "GET", unixURL+"/v1/status", "", nil)
	var st struct{ Seq uint64 }
	if code != 200 || json.Unmarshal(b, &st) != nil || st.Seq < maxSeq {
		t.Fatalf("status after restart: %d %s; answered up to seq %d", code, b, maxSeq)
	}
	return len(recs)
}

// runLoadUntilKill starts the load generator, lets it print `progress`
// progress lines, kills the daemon with SIGKILL and waits for the load
// generator to give up.
func runLoadUntilKill(t *testing.T, d *daemon, recFile, runID string, progress int) {
	t.Helper()
	load := exec.Command(binary(t, "pstatectl"), "load", "--addr", "unix:"+d.Sock,
		"--concurrency", "4", "--batch", "8", "--steps", "8", "--duration", "10m",
		"--record", recFile, "--run-id", runID, "--progress", "20ms")
	load.Env = daemontest.CleanEnv()
	stderr, err := load.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	seen := 0
	var out []string
	for seen < progress && sc.Scan() {
		out = append(out, sc.Text())
		if strings.Contains(sc.Text(), "events/s") {
			seen++
		}
	}
	d.Kill()
	// The clients fail on the dead socket and give up; drain the rest.
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	_ = load.Wait()
	if seen < progress {
		t.Fatalf("load generator ended early:\n%s", strings.Join(out, "\n"))
	}
}

func TestKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop: not in -short")
	}
	rounds := pick(3, envInt("PSTATE_SOAK_KILLS", 40))
	dataDir := t.TempDir()
	recFile := filepath.Join(t.TempDir(), "answered.ndjson")
	args := []string{"--sync", "always", "--checkpoint-interval", "40ms",
		"--checkpoint-wal-bytes", "32768", "--snapshots-keep", "2", "--log-level", "warn"}
	rng := rand.New(rand.NewPCG(uint64(rounds), 7))
	checked := 0
	for round := range rounds {
		d := startDaemon(t, dataDir, args...)
		checked += checkAnswered(t, d, readRecord(t, recFile))
		runLoadUntilKill(t, d, recFile, fmt.Sprintf("k%d-", round), 1+rng.IntN(8))
	}
	d := startDaemon(t, dataDir, args...)
	recs := readRecord(t, recFile)
	if len(recs) == 0 {
		t.Fatal("the load generator recorded no answered event")
	}
	checked += checkAnswered(t, d, recs)
	if code := d.Stop(); code != 0 {
		t.Fatalf("clean stop exited %d:\n%s", code, d.Log())
	}
	out, err := exec.Command(binary(t, "pstatectl"), "verify", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("verify after the kill loop: %v\n%s", err, out)
	}
	t.Logf("SUMMARY kill loop: %d kill -9 rounds, %d answered events recorded, %d resend "+
		"checks, 0 lost", rounds, len(recs), checked)
}
