package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/cmd/internal/server"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// Injected failures in the daemon's core: server.New on a vfs.Mem, driven
// through its HTTP handler in-process by concurrent writers and
// checkpoints. A fault fires once the load runs. Whatever it is, every
// event answered 200 must survive a crash taken at the end; the files must
// stay sound (no partial record, older snapshots kept); a restart once the
// fault is gone (space freed) must serve again with every answered event.

// memServer is a Server on a vfs.Mem and its handler.
type memServer struct {
	s *server.Server
	h http.Handler
}

func openServer(t *testing.T, fs *vfs.Mem) *memServer {
	t.Helper()
	s := server.New(server.Config{DataDir: dataDir, FS: fs, Sync: wal.SyncAlways,
		CheckpointInterval: time.Hour, CheckpointWALBytes: -1, SnapshotsKeep: 2})
	if err := s.Open(); err != nil {
		t.Fatalf("open: %v", err)
	}
	return &memServer{s: s, h: s.Handler(false)}
}

// do serves one request in-process and returns the status and body.
func (m *memServer) do(method, target, body string) (int, string) {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	w := httptest.NewRecorder()
	m.h.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func jobBody(id string) string {
	return fmt.Sprintf(`{"type":"job.submitted","id":"ev-%s","job_id":%q,"name":"f",`+
		`"steps":["a","b"],"labels":{"team":"x"}}`, id, id)
}

// postJob submits job id and returns its seq on a 200.
func (m *memServer) postJob(id string) (int, uint64, string) {
	code, body := m.do("POST", "/v1/events", jobBody(id))
	if code != http.StatusOK {
		return code, 0, body
	}
	var ans struct {
		Results []struct{ Seq uint64 } `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || len(ans.Results) != 1 {
		return -1, 0, body
	}
	return code, ans.Results[0].Seq, body
}

// faultCase is one injected failure and what the daemon must do about it.
type faultCase struct {
	name  string
	fault vfs.Fault
	// readOnly: writes must end up refused with 503 and /readyz must say
	// why (reason holds this text).
	readOnly bool
	reason   string
}

var faultCases = []faultCase{
	{"log fsync fails once", vfs.Fault{Op: vfs.OpSync, Path: "/data/wal/pstate.wal",
		After: 3, Times: 1}, true, "input/output error"},
	{"log dir fsync fails once", vfs.Fault{Op: vfs.OpSyncDir, Path: "/data/wal",
		Times: 1}, true, "input/output error"},
	{"truncation temp file fsync fails", vfs.Fault{Op: vfs.OpSync,
		Path: "pstate.wal.tmp", Times: 1}, true, "input/output error"},
	{"truncation temp file fsync fails later", vfs.Fault{Op: vfs.OpSync,
		Path: "pstate.wal.tmp", After: 1, Times: 1}, true, "input/output error"},
	{"snapshot fsync fails", vfs.Fault{Op: vfs.OpSync, Path: "/data/snapshots/",
		Times: 1}, true, "input/output error"},
	{"snapshot dir fsync fails", vfs.Fault{Op: vfs.OpSyncDir, Path: "/data/snapshots",
		Times: 1}, true, "input/output error"},
	{"log disk full (short write)", vfs.Fault{Op: vfs.OpWrite, Path: "/data/wal/",
		After: 5, Err: syscall.ENOSPC, Prefix: 7}, true, "no space left"},
	{"snapshot disk full", vfs.Fault{Op: vfs.OpWrite, Path: "/data/snapshots/",
		Err: syscall.ENOSPC, Prefix: 100}, true, "no space left"},
	{"disk full everywhere", vfs.Fault{Op: vfs.OpWrite, After: 10, Err: syscall.ENOSPC,
		Prefix: 3}, true, "no space left"},
	{"log file rename fails", vfs.Fault{Op: vfs.OpRename, Path: "pstate.wal.tmp",
		Times: 1}, true, "input/output error"},
}

func TestFaults(t *testing.T) {
	// Under soak each fault also fires later in the load: after 1..7 more
	// matching operations.
	later := pick(1, 8)
	answered, runs, failed, moot := 0, 0, 0, 0
	for _, fc := range faultCases {
		for v := range later {
			c := fc
			c.fault.After += v
			fired := true
			if !t.Run(fmt.Sprintf("%s/after+%d", fc.name, v), func(t *testing.T) {
				defer func() { fired = !t.Skipped() }()
				answered += runFault(t, c)
			}) {
				failed++
			}
			if fired {
				runs++
			} else {
				moot++
			}
		}
	}
	t.Logf("SUMMARY faults: %d kinds of injected failure, %d runs where it fired (%d where "+
		"the load ended first), %d answered events checked after a crash and a restart, "+
		"%d runs failed", len(faultCases), runs, moot, answered, failed)
}

// runFault runs one case and returns the events it checked.
func runFault(t *testing.T, fc faultCase) int {
	fs := vfs.NewMem()
	m := openServer(t, fs)
	led := map[string]uint64{}
	var mu sync.Mutex
	record := func(id string, seq uint64) {
		mu.Lock()
		led[id] = seq
		mu.Unlock()
	}
	// Two checkpoints before the fault: older snapshots to keep.
	for i := range 20 {
		id := fmt.Sprintf("warm%02d", i)
		code, seq, body := m.postJob(id)
		if code != http.StatusOK {
			t.Fatalf("warm-up write: %d %s", code, body)
		}
		record(id, seq)
		if i%10 == 9 {
			if code, body := m.do("POST", "/v1/checkpoint", ""); code != http.StatusOK {
				t.Fatalf("warm-up checkpoint: %d %s", code, body)
			}
		}
	}
	before, err := checkpoint.List(fs, dataDir+"/snapshots")
	if err != nil || len(before) != 2 {
		t.Fatalf("snapshots before the fault: %v, %v", before, err)
	}

	// Count the operations the fault matches: one that never fired (the
	// load ended first) makes the run moot.
	var matched atomic.Int64
	fs.SetOnOp(func(op vfs.Op, path string) error {
		if (fc.fault.Op == vfs.OpAny || op == fc.fault.Op) && strings.Contains(path, fc.fault.Path) {
			matched.Add(1)
		}
		return nil
	})
	fs.Inject(fc.fault)
	refused := loadUnderFault(t, m, record)
	fs.SetOnOp(nil)
	if matched.Load() <= int64(fc.fault.After) {
		_ = m.s.Close(context.Background())
		t.Skipf("the fault never fired: %d matching operations", matched.Load())
	}
	if fc.readOnly && refused == 0 {
		t.Fatalf("no write was refused")
	}
	checkAfterFault(t, m, fs, fc, refused)
	checkFilesSound(t, fs, before)

	// A crash now must keep every answered event.
	checkCrashKeeps(t, fs.Crash(), led)

	// Space freed (the fault gone), the daemon restarted: writable again.
	fs.ClearFaults()
	_ = m.s.Close(context.Background())
	m2 := openServer(t, fs)
	defer m2.s.Close(context.Background())
	if code, body := m2.do("GET", "/readyz", ""); code != http.StatusOK {
		t.Fatalf("readyz after the restart: %d %s", code, body)
	}
	if code, _, body := m2.postJob("after-restart"); code != http.StatusOK {
		t.Fatalf("write after the restart: %d %s", code, body)
	}
	for id, seq := range led {
		code, body := m2.do("GET", "/v1/jobs/"+id, "")
		if code != http.StatusOK {
			t.Fatalf("answered job %s (seq %d) after the restart: %d %s", id, seq, code, body)
		}
	}
	return len(led)
}

// loadUnderFault runs four writers of 25 jobs each and asks for a
// checkpoint every 8 answers of writer 0. It returns the writes refused.
// Read-only is for good: a write that starts after another write was
// refused must be refused too, never answered after a retried fsync.
func loadUnderFault(t *testing.T, m *memServer, record func(string, uint64)) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var clock atomic.Int64
	refused := 0
	firstRefusal := int64(math.MaxInt64)
	var accepted []int64 // start ticks of the writes answered 200
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := fmt.Sprintf("w%d-%02d", w, i)
				start := clock.Add(1)
				code, seq, body := m.postJob(id)
				end := clock.Add(1)
				mu.Lock()
				switch code {
				case http.StatusOK:
					record(id, seq)
					accepted = append(accepted, start)
				case http.StatusServiceUnavailable:
					refused++
					firstRefusal = min(firstRefusal, end)
				default:
					t.Errorf("write %s: %d %s", id, code, body)
				}
				mu.Unlock()
				if w == 0 && i%8 == 7 {
					code, body := m.do("POST", "/v1/checkpoint", "")
					if code != http.StatusOK && code != http.StatusServiceUnavailable &&
						code != http.StatusInternalServerError {
						t.Errorf("checkpoint: %d %s", code, body)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, start := range accepted {
		if start > firstRefusal {
			t.Errorf("a write started after a refusal was answered 200")
		}
	}
	return refused
}

// checkAfterFault checks the answers of a daemon after the fault fired.
func checkAfterFault(t *testing.T, m *memServer, fs *vfs.Mem, fc faultCase, refused int) {
	t.Helper()
	code, body := m.do("GET", "/readyz", "")
	if !fc.readOnly {
		if code != http.StatusOK || refused > 0 {
			t.Fatalf("writable expected: readyz %d %s, %d writes refused", code, body, refused)
		}
		return
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "read_only") ||
		!strings.Contains(body, fc.reason) {
		t.Fatalf("readyz while read-only: %d %s", code, body)
	}
	if code, body := m.do("POST", "/v1/events", jobBody("late")); code != 503 ||
		!strings.Contains(body, fc.reason) {
		t.Fatalf("write while read-only: %d %s", code, body)
	}
	if code, body := m.do("GET", "/v1/jobs/warm00", ""); code != http.StatusOK {
		t.Fatalf("read while read-only: %d %s", code, body)
	}
	if code, body := m.do("GET", "/v1/status", ""); code != http.StatusOK {
		t.Fatalf("status while read-only: %d %s", code, body)
	}
}

// checkFilesSound checks the live files: every snapshot readable, none of
// those from before the fault lost unless a newer sound one replaced it,
// no temporary snapshot left, and a log with no partial record.
func checkFilesSound(t *testing.T, fs *vfs.Mem, before []checkpoint.Info) {
	t.Helper()
	snaps, err := checkpoint.List(fs, dataDir+"/snapshots")
	if err != nil {
		t.Fatal(err)
	}
	// Keep is 2 and a failed checkpoint prunes nothing: at least two
	// snapshots, the newest no older than before.
	if len(snaps) < 2 || snaps[0].Seq < before[0].Seq {
		t.Fatalf("snapshots after the fault %v, before %v", snaps, before)
	}
	for _, s := range snaps {
		err := checkpoint.Read(fs, s.Path, func(checkpoint.Meta, io.Reader) error { return nil })
		if err != nil {
			t.Fatalf("snapshot %s unreadable after the fault: %v", s.Path, err)
		}
	}
	names, _ := fs.List(dataDir + "/snapshots")
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			t.Fatalf("temporary snapshot left after a failed checkpoint: %s", n)
		}
	}
	info, err := wal.Scan(fs, dataDir+"/wal", nil)
	if err != nil || info.TornOffset >= 0 {
		t.Fatalf("log after the fault: torn at %d (%s), %v", info.TornOffset, info.TornReason, err)
	}
}

// checkCrashKeeps recovers a crash clone and checks every answered event.
func checkCrashKeeps(t *testing.T, c *vfs.Mem, led map[string]uint64) {
	t.Helper()
	findings, err := datadir.VerifyFS(c, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		if f.Fault() {
			t.Fatalf("verify after a crash: %s", f)
		}
	}
	rec, err := datadir.Recover(dataDir, datadir.RecoverOptions{FS: c})
	if err != nil {
		t.Fatalf("recover after a crash: %v", err)
	}
	defer rec.Log.Close()
	for id, seq := range led {
		if got, ok := rec.State.Applied("ev-" + id); !ok || got != seq {
			t.Fatalf("answered event ev-%s (seq %d) after a crash: %d, %v", id, seq, got, ok)
		}
	}
}
