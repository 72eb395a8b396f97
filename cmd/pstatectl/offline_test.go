package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
)

// loadedState runs a small load through an engine and returns its root.
func loadedState(t *testing.T) *pstate.State {
	t.Helper()
	snd := newEngineSender(t)
	rep, err := runLoadClients(context.Background(), testLoadConfig(60, 3, 40), shared(snd),
		io.Discard)
	if err != nil || rep.err() != nil {
		t.Fatal(err, rep.err())
	}
	return snd.eng.Root()
}

// encodeBackup encodes st as GET /v1/snapshot would.
func encodeBackup(t *testing.T, st *pstate.State) []byte {
	t.Helper()
	seq, counts := st.Meta()
	var buf bytes.Buffer
	meta := checkpoint.Meta{Seq: seq, Time: time.Unix(1700000000, 0).UTC(), Counts: counts}
	if _, err := checkpoint.Encode(&buf, meta, st.EncodeSnapshot); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// allJobs lists every job of st.
func allJobs(st *pstate.State) []pstate.JobView {
	var out []pstate.JobView
	q := pstate.JobQuery{Limit: 1000}
	for range 1000 {
		page, next := st.Jobs(q)
		out = append(out, page...)
		if next == "" {
			break
		}
		q.After = next
	}
	return out
}

// TestBackupRestoreRoundTrip backs a state up through the client, restores
// it into a fresh dir and recovers the dir as the daemon would: the state
// and the log's next seq must match.
func TestBackupRestoreRoundTrip(t *testing.T) {
	st := loadedState(t)
	snap := encodeBackup(t, st)
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/snapshot": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Pstate-Seq", strconv.FormatUint(st.Seq(), 10))
			w.Write(snap)
		},
	})
	tmp := t.TempDir()
	file := filepath.Join(tmp, "backup.pst")
	code, out, stderr := runCLI(t, "", "--addr", f.addr(), "backup", file)
	if code != 0 || !strings.HasPrefix(out, "backup of seq "+strconv.FormatUint(st.Seq(), 10)) {
		t.Fatalf("backup: exit %d %q %q", code, out, stderr)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("tmp file left: %v", err)
	}

	dir := filepath.Join(tmp, "data")
	code, out, stderr = runCLI(t, "", "restore", file, "--data-dir", dir)
	if code != 0 {
		t.Fatalf("restore: exit %d %q %q", code, out, stderr)
	}

	rec, err := datadir.Recover(dir, datadir.RecoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Log.Close()
	if rec.State.Seq() != st.Seq() || rec.Log.NextSeq() != st.Seq()+1 {
		t.Fatalf("recovered seq %d next %d, want %d", rec.State.Seq(), rec.Log.NextSeq(), st.Seq())
	}
	if !reflect.DeepEqual(rec.State.Counts(), st.Counts()) {
		t.Fatalf("counts %+v, want %+v", rec.State.Counts(), st.Counts())
	}
	got, want := allJobs(rec.State), allJobs(st)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if len(want) == 0 || !bytes.Equal(gb, wb) {
		t.Fatalf("jobs differ after the round trip (%d vs %d)", len(got), len(want))
	}

	code, out, _ = runCLI(t, "", "verify", "--data-dir", dir)
	if code != 0 || !strings.HasSuffix(out, ": sound\n") {
		t.Fatalf("verify after restore: exit %d %q", code, out)
	}
}

func TestRestoreRefusesNonEmptyDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "b.pst")
	os.WriteFile(file, encodeBackup(t, pstate.NewState()), 0o600)
	dir := filepath.Join(tmp, "data")
	os.MkdirAll(filepath.Join(dir, "wal"), 0o755)
	code, _, stderr := runCLI(t, "", "restore", file, "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, dir) || !strings.Contains(stderr, "not empty") {
		t.Fatalf("exit %d %q", code, stderr)
	}
}

func TestRestoreRefusesDamagedBackup(t *testing.T) {
	tmp := t.TempDir()
	b := encodeBackup(t, loadedState(t))
	b[len(b)/2] ^= 0x40
	file := filepath.Join(tmp, "b.pst")
	os.WriteFile(file, b, 0o600)
	dir := filepath.Join(tmp, "data")
	code, _, stderr := runCLI(t, "", "restore", file, "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "decode backup") {
		t.Fatalf("exit %d %q", code, stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("restore left %s behind: %v", dir, err)
	}
}

// TestBackupRefusesDamagedSnapshot: a download that does not decode never
// takes the backup's name.
func TestBackupRefusesDamagedSnapshot(t *testing.T) {
	b := encodeBackup(t, loadedState(t))
	b[len(b)-10] ^= 1
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/snapshot": func(w http.ResponseWriter, r *http.Request) { w.Write(b) },
	})
	file := filepath.Join(t.TempDir(), "backup.pst")
	code, _, stderr := runCLI(t, "", "--addr", f.addr(), "backup", file)
	if code != 1 || !strings.Contains(stderr, "decode backup") {
		t.Fatalf("exit %d %q", code, stderr)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("damaged backup was kept")
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Fatal("tmp file left")
	}
}

// logDir makes a data dir whose log holds n events.
func logDir(t *testing.T, n int) (dir, logFile string) {
	t.Helper()
	dir = t.TempDir()
	l, err := wal.Open(filepath.Join(dir, datadir.WALDir), wal.Options{Sync: wal.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := pstate.Event{Type: pstate.TypeJobSubmitted, ID: "e" + strconv.Itoa(i),
			JobID: "j" + strconv.Itoa(i), Name: "n", Steps: []string{"a"},
			Time: time.Unix(1700000000, 0).UTC()}
		if _, _, err := l.Append([][]byte{pstate.AppendEvent(nil, &e)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(filepath.Join(dir, datadir.WALDir))
	if len(names) != 1 {
		t.Fatalf("log dir holds %d files", len(names))
	}
	return dir, filepath.Join(dir, datadir.WALDir, names[0].Name())
}

func TestWALDump(t *testing.T) {
	dir, _ := logDir(t, 5)
	code, out, stderr := runCLI(t, "", "wal", "dump", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	var prev int64 = -1
	for i, line := range lines {
		var r struct {
			Seq    uint64       `json:"seq"`
			Offset int64        `json:"offset"`
			Event  pstate.Event `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Seq != uint64(i+1) || r.Offset <= prev || r.Event.JobID != "j"+strconv.Itoa(i) {
			t.Fatalf("line %d: %s", i, line)
		}
		prev = r.Offset
	}
	code, out, _ = runCLI(t, "", "wal", "dump", "--data-dir", dir, "--from", "4")
	if code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("--from: %q", out)
	}

	// An empty log, as a clean stop leaves it, says so.
	dir, _ = logDir(t, 0)
	code, out, stderr = runCLI(t, "", "wal", "dump", "--data-dir", dir)
	if code != 0 || out != "" || !strings.Contains(stderr, "holds no records") {
		t.Fatalf("empty log: exit %d, out %q, stderr %q", code, out, stderr)
	}
}

func TestVerifyFindsDamage(t *testing.T) {
	dir, file := logDir(t, 5)
	code, out, _ := runCLI(t, "", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "sound") {
		t.Fatalf("sound dir: exit %d %q", code, out)
	}
	before, _ := os.ReadFile(file)

	// A torn last record is a note, not a fault; verify changes nothing.
	os.Truncate(file, int64(len(before)-3))
	code, out, _ = runCLI(t, "", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "note: "+file) || !strings.Contains(out, "torn") {
		t.Fatalf("torn tail: exit %d %q", code, out)
	}
	if st, _ := os.Stat(file); st.Size() != int64(len(before)-3) {
		t.Fatal("verify changed the log")
	}
	code, _, stderr := runCLI(t, "", "wal", "dump", "--data-dir", dir)
	if code != 0 || !strings.Contains(stderr, "torn last record") {
		t.Fatalf("dump of torn tail: exit %d %q", code, stderr)
	}

	// A flipped byte in the first record, sound records after it: a fault
	// with file, offset and kind.
	b := append([]byte{}, before...)
	b[40] ^= 0xff
	os.WriteFile(file, b, 0o644)
	code, out, stderr = runCLI(t, "", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "FAULT: "+file+": offset 32: ") ||
		!strings.Contains(stderr, "1 fault(s)") {
		t.Fatalf("damage: exit %d %q %q", code, out, stderr)
	}
	code, out, _ = runCLI(t, "", "verify", "--data-dir", dir, "--json")
	var f struct {
		File   string `json:"file"`
		Offset int64  `json:"offset"`
		Kind   string `json:"kind"`
		Fault  bool   `json:"fault"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &f) != nil || f.File != file ||
		f.Offset != 32 || f.Kind == "" || !f.Fault {
		t.Fatalf("--json: exit %d %q", code, out)
	}
	code, _, stderr = runCLI(t, "", "wal", "dump", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "offset 32") {
		t.Fatalf("dump of damage: exit %d %q", code, stderr)
	}
}

func TestVerifyRefusesLockedDir(t *testing.T) {
	dir, _ := logDir(t, 1)
	unlock, err := datadir.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, stderr := runCLI(t, "", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "locked by pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("exit %d %q", code, stderr)
	}
	code, out, stderr := runCLI(t, "", "verify", "--data-dir", dir, "--allow-running")
	if code != 0 || !strings.Contains(stderr, "warning") || !strings.Contains(out, "sound") {
		t.Fatalf("--allow-running: exit %d %q %q", code, out, stderr)
	}
}
