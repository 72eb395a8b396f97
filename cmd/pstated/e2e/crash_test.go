package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/internal/daemontest"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// answered is one event the daemon answered 200 before the crash.
type answered struct {
	event map[string]any
	seq   uint64
}

// loadJob drives one single-step job through its life, one request per
// event, recording each answered event. It stops at the first error.
func loadJob(d *daemon, jobID string, rec *[]answered) bool {
	steps := []map[string]any{
		ev("type", "job.submitted", "job_id", jobID, "name", "load", "steps", []string{"s"}),
		ev("type", "job.started", "job_id", jobID, "worker", "w"),
		ev("type", "step.started", "job_id", jobID, "step", "s", "attempt", 1),
		ev("type", "step.finished", "job_id", jobID, "step", "s", "attempt", 1,
			"status", "succeeded", "exit_code", 0),
	}
	for i, e := range steps {
		e["id"] = fmt.Sprintf("%s/%d", jobID, i)
		b, _ := json.Marshal(e)
		a, err := do(d.Client, "POST", "http://pstated/v1/events", b)
		if err != nil || a.status != http.StatusOK {
			return false
		}
		var s submitted
		if json.Unmarshal(a.body, &s) != nil || len(s.Results) != 1 {
			return false
		}
		*rec = append(*rec, answered{event: e, seq: s.Results[0].Seq})
	}
	return true
}

// TestKill9UnderLoad kills pstated (sync always) in the middle of a load
// and checks, after a restart, that every answered event is there: resent,
// each is a duplicate with its original seq, and every job whose last event
// was answered has finished.
func TestKill9UnderLoad(t *testing.T) {
	dir := t.TempDir()
	// A small size trigger makes checkpoints and truncations run during
	// the load, so the crash may hit one.
	d := start(t, dir, nil, "--sync", "always", "--checkpoint-wal-bytes", "64KiB")

	const workers, killAfter = 8, 1500
	var (
		wg     sync.WaitGroup
		total  atomic.Int64
		enough = make(chan struct{})
		once   sync.Once
		recs   = make([][]answered, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				before := len(recs[w])
				ok := loadJob(d, fmt.Sprintf("w%d-j%d", w, j), &recs[w])
				if total.Add(int64(len(recs[w])-before)) >= killAfter {
					once.Do(func() { close(enough) })
				}
				if !ok {
					return
				}
			}
		}()
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-enough:
	case <-stopped:
		t.Fatalf("the load stopped before %d answers:\n%s", killAfter, d.Log())
	}
	d.Kill()
	<-stopped
	d.Client.CloseIdleConnections()

	findings, err := datadir.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		if f.Fault() {
			t.Errorf("verify after kill -9: %s", f)
		}
	}

	// The killed daemon left its socket file; the new one, holding the
	// lock, removes it and listens on the same path.
	if _, err := os.Stat(d.Sock); err != nil {
		t.Fatalf("no stale socket after kill -9: %v", err)
	}
	d2 := start(t, dir, nil, "--sync", "always", "--listen", "unix:"+d.Sock)
	d2.Client = daemontest.UnixClient(d.Sock)
	defer d2.Client.CloseIdleConnections()
	var all []answered
	for _, r := range recs {
		all = append(all, r...)
	}
	t.Logf("%d events answered before kill -9", len(all))
	for i := 0; i < len(all); i += 500 {
		chunk := all[i:min(i+500, len(all))]
		list := make([]any, len(chunk))
		for k, a := range chunk {
			list[k] = a.event
		}
		s := decodeSubmitted(t, d2.post("/v1/events", map[string]any{"events": list}))
		for k, res := range s.Results {
			if !res.Duplicate || res.Seq != chunk[k].seq {
				t.Fatalf("answered event %v (seq %d) after restart: %+v", chunk[k].event,
					chunk[k].seq, res)
			}
		}
	}
	for _, a := range all {
		if a.event["type"] != "step.finished" {
			continue
		}
		id := a.event["job_id"].(string)
		r := d2.get("/v1/jobs/" + id)
		mustStatus(t, "job "+id, r, http.StatusOK)
		if job := r.json(t)["job"].(map[string]any); job["state"] != "succeeded" {
			t.Fatalf("job %s: %s", id, r.body)
		}
	}
	if code := d2.Stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// walFile returns the path of the log's only file.
func walFile(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, datadir.WALDir, "*"))
	if err != nil || len(names) != 1 {
		t.Fatalf("log files %v: %v", names, err)
	}
	return names[0]
}

// recordsEnd returns the offset just past the last record of the log in
// dir: a killed daemon leaves the zeros it laid ahead of them after it.
func recordsEnd(t *testing.T, dir string) int64 {
	t.Helper()
	info, err := wal.Scan(vfs.OS, filepath.Join(dir, datadir.WALDir), nil)
	if err != nil || info.TornOffset >= 0 {
		t.Fatalf("scan log: %+v, %v", info, err)
	}
	return info.Size - info.Zeros
}

// crashWithRecords leaves a data dir whose log holds n records: the
// daemon is killed, so no final checkpoint truncates it.
func crashWithRecords(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	d := start(t, dir, nil, "--checkpoint-interval", "1h")
	submitJobs(t, d, "c", n)
	d.Kill()
	return dir
}

// TestDamagedLogRefusesStart: a flipped byte in a record that is not the
// last makes the start fail with exit 1, naming the file and the offset.
func TestDamagedLogRefusesStart(t *testing.T) {
	dir := crashWithRecords(t, 20)
	path := walFile(t, dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[recordsEnd(t, dir)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	d := launch(t, dir, nil)
	if code := d.Wait(); code != 1 {
		t.Fatalf("exit %d with a damaged log, want 1\n%s", code, d.Log())
	}
	m, ok := d.WaitLine(func(m map[string]any) bool { return m["msg"] == "pstated failed" })
	if !ok {
		t.Fatalf("no failure line:\n%s", d.Log())
	}
	msg := fmt.Sprint(m["error"])
	if m["file"] != path || m["offset"] == nil || !strings.Contains(msg, path) {
		t.Fatalf("failure does not name file %s and offset: %v", path, m)
	}
}

// TestTornTailRepaired: half a record at the end of the log (a crash in
// the middle of a write) is cut at start, with a warning naming the file
// and offset; every whole record survives.
func TestTornTailRepaired(t *testing.T) {
	dir := crashWithRecords(t, 10)
	path := walFile(t, dir)
	end := recordsEnd(t, dir)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A plausible record start that ends early, over the zeros after the
	// records.
	if _, err := f.WriteAt([]byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 0x0b}, end); err != nil {
		t.Fatal(err)
	}
	f.Close()

	d := start(t, dir, nil)
	m, ok := d.RecoveryLine(func(m map[string]any) bool { return m["msg"] == "torn log tail cut" })
	if !ok {
		t.Fatalf("no repair warning:\n%s", d.Log())
	}
	if m["file"] != path || m["offset"].(float64) != float64(end) {
		t.Fatalf("repair names %v at %v, want %s at %d", m["file"], m["offset"], path, end)
	}
	a := d.get("/v1/status")
	if st := a.json(t); st["seq"] != 10.0 {
		t.Fatalf("status after repair: %s", a.body)
	}
}

// record is one line of `pstatectl load --record`.
type record struct {
	ID    string `json:"id"`
	Seq   uint64 `json:"seq"`
	Type  string `json:"type"`
	JobID string `json:"job_id"`
}

// TestKill9UnderCtlLoad kills pstated in the middle of `pstatectl load
// --record` (realistic jobs: retries, failures, cancels, workspaces,
// purges, batches of events) and checks after a restart that every recorded
// event is held: resent with its id, each is a duplicate with its seq.
func TestKill9UnderCtlLoad(t *testing.T) {
	ctl := pstatectl(t)
	dir := t.TempDir()
	d := start(t, dir, nil, "--sync", "always", "--checkpoint-wal-bytes", "256KiB")
	recFile := filepath.Join(t.TempDir(), "rec.ndjson")
	load := exec.Command(ctl, "load", "--addr", "unix:"+d.Sock, "--record", recFile,
		"--concurrency", "8", "--batch", "20", "--duration", "2m", "--progress", "0")
	load.Env = daemontest.CleanEnv()
	var out bytes.Buffer
	load.Stdout, load.Stderr = &out, &out
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	// If the load ends early, end the daemon too, so the wait below ends.
	loadDone := make(chan struct{})
	go func() {
		_ = load.Wait() // fails once the daemon is gone
		_ = d.Cmd.Process.Kill()
		close(loadDone)
	}()
	// The daemon logs each request at debug level: kill it once it has
	// answered enough writes.
	answeredWrites := 0
	_, ok := d.WaitLine(func(m map[string]any) bool {
		if m["msg"] == "request" && m["path"] == "/v1/events" && m["status"] == 200.0 {
			answeredWrites++
		}
		return answeredWrites >= 60
	})
	d.Kill()
	<-loadDone
	if !ok {
		t.Fatalf("the load ended before %d answered writes:\n%s", 60, out.String())
	}

	f, err := os.ReadFile(recFile)
	if err != nil {
		t.Fatalf("no record file: %v\n%s", err, out.String())
	}
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(string(f)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.ID == "" || r.Seq == 0 {
			t.Fatalf("bad record line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	t.Logf("%d events recorded before kill -9", len(recs))

	d2 := start(t, dir, nil, "--sync", "always")
	// An event whose id was applied is answered as a duplicate with its
	// first seq whatever its body: resend each id with a stand-in body.
	for i := 0; i < len(recs); i += 500 {
		chunk := recs[i:min(i+500, len(recs))]
		list := make([]any, len(chunk))
		for k, r := range chunk {
			list[k] = ev("type", "job.submitted", "id", r.ID, "job_id", "lost-"+r.ID,
				"name", "n", "steps", []string{"s"})
		}
		s := decodeSubmitted(t, d2.post("/v1/events", map[string]any{"events": list}))
		for k, res := range s.Results {
			if !res.Duplicate || res.Seq != chunk[k].Seq {
				t.Fatalf("recorded %+v after restart: %+v", chunk[k], res)
			}
		}
	}
	if code := d2.Stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
