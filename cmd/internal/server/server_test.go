package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a Server on an in-memory filesystem behind httptest.
type testServer struct {
	t   *testing.T
	s   *Server
	ts  *httptest.Server
	reg *prometheus.Registry
}

func newTestServer(t *testing.T, fs *vfs.Mem, token []byte, open bool) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := New(Config{DataDir: "/data", FS: fs, Sync: wal.SyncAlways, Registerer: reg,
		Token: token, Version: "test"})
	ts := httptest.NewServer(s.Handler(true))
	x := &testServer{t: t, s: s, ts: ts, reg: reg}
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close(context.Background())
	})
	if open {
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) code(t *testing.T) string {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error.Code == "" {
		t.Fatalf("not an error body (%d): %q", r.status, r.body)
	}
	return b.Error.Code
}

func (x *testServer) do(method, path, body string, hdr ...string) reply {
	x.t.Helper()
	req, err := http.NewRequest(method, x.ts.URL+path, strings.NewReader(body))
	if err != nil {
		x.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := x.ts.Client().Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		x.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (x *testServer) want(r reply, status int) {
	x.t.Helper()
	if r.status != status {
		x.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

func submitJob(id string) string {
	return fmt.Sprintf(`{"type":"job.submitted","id":"e-%s","job_id":%q,"name":"n","steps":["s"]}`,
		id, id)
}

// gauge reads a gauge's value from the registry.
func (x *testServer) gauge(name string) float64 {
	x.t.Helper()
	mfs, err := x.reg.Gather()
	if err != nil {
		x.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	x.t.Fatalf("no metric %s", name)
	return 0
}

// TestRecovering: before Open, the probes answer and the API is 503.
func TestRecovering(t *testing.T) {
	x := newTestServer(t, vfs.NewMem(), nil, false)
	x.want(x.do("GET", "/healthz", ""), 200)
	r := x.do("GET", "/readyz", "")
	x.want(r, 503)
	if r.code(t) != CodeRecovering {
		t.Fatalf("readyz: %s", r.body)
	}
	for _, p := range []string{"/v1/status", "/v1/jobs", "/v1/snapshot"} {
		r := x.do("GET", p, "")
		x.want(r, 503)
		if r.code(t) != CodeRecovering {
			t.Fatalf("%s: %s", p, r.body)
		}
	}
	if err := x.s.Open(); err != nil {
		t.Fatal(err)
	}
	x.want(x.do("GET", "/readyz", ""), 200)
	x.want(x.do("GET", "/v1/status", ""), 200)
	if x.gauge("pstate_ready") != 1 {
		t.Fatal("pstate_ready is not 1")
	}
}

// TestReadOnly: a failed fsync (or a full disk) of the log turns writes
// and /readyz to 503 with the reason; reads are still served.
func TestReadOnly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault vfs.Fault
		want  string
	}{
		{"fsync fails", vfs.Fault{Op: vfs.OpSync, Path: "/wal/"}, "input/output error"},
		{"disk full", vfs.Fault{Op: vfs.OpWrite, Path: "/wal/", Err: syscall.ENOSPC},
			"no space left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			x := newTestServer(t, fs, nil, true)
			x.want(x.do("POST", "/v1/events", submitJob("j1")), 200)

			fs.Inject(tc.fault)
			r := x.do("POST", "/v1/events", submitJob("j2"))
			x.want(r, 503)
			if r.code(t) != CodeReadOnly || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("write after the fault: %s", r.body)
			}
			r = x.do("GET", "/readyz", "")
			x.want(r, 503)
			var rb readyBody
			if err := json.Unmarshal(r.body, &rb); err != nil || rb.Status != CodeReadOnly ||
				!strings.Contains(rb.Reason, tc.want) {
				t.Fatalf("readyz: %s", r.body)
			}
			// Later writes are refused at once; reads go on.
			r = x.do("POST", "/v1/events", submitJob("j3"))
			x.want(r, 503)
			x.want(x.do("GET", "/v1/jobs/j1", ""), 200)
			x.want(x.do("GET", "/v1/jobs/j2", ""), 404)
			r = x.do("GET", "/v1/status", "")
			x.want(r, 200)
			if !strings.Contains(string(r.body), `"read_only"`) {
				t.Fatalf("status does not say read-only: %s", r.body)
			}
			x.want(x.do("POST", "/v1/checkpoint", ""), 503)
			if x.gauge("pstate_read_only") != 1 {
				t.Fatal("pstate_read_only is not 1")
			}
			// The watchdog still sees a live loop.
			if err := x.s.Alive(context.Background()); err != nil {
				t.Fatalf("Alive while read-only: %v", err)
			}
			if err := x.s.Close(context.Background()); err == nil {
				t.Fatal("Close of a read-only server reports no problem")
			}
		})
	}
}

// TestCrashRecovery: what a crash leaves (only synced data) recovers to a
// state holding every answered event, from a snapshot plus the log.
func TestCrashRecovery(t *testing.T) {
	fs := vfs.NewMem()
	x := newTestServer(t, fs, nil, true)
	for i := range 5 {
		x.want(x.do("POST", "/v1/events", submitJob(fmt.Sprintf("a%d", i))), 200)
	}
	x.want(x.do("POST", "/v1/checkpoint", ""), 200)
	for i := range 5 {
		x.want(x.do("POST", "/v1/events", submitJob(fmt.Sprintf("b%d", i))), 200)
	}
	if err := x.s.Alive(context.Background()); err != nil {
		t.Fatal(err)
	}
	crashed := fs.Crash()

	y := newTestServer(t, crashed, nil, true)
	r := y.do("GET", "/v1/status", "")
	y.want(r, 200)
	var st statusBody
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Seq != 10 || st.Jobs.Queued != 10 || st.LastCheckpoint == nil ||
		st.LastCheckpoint.Seq != 5 {
		t.Fatalf("after the crash: %s", r.body)
	}
	if y.gauge("pstate_recovery_records") != 5 {
		t.Fatalf("replayed %v records, want 5", y.gauge("pstate_recovery_records"))
	}
}

// TestSnapshotStream: GET /v1/snapshot is a snapshot in the checkpoint
// format of the state at Pstate-Seq.
func TestSnapshotStream(t *testing.T) {
	fs := vfs.NewMem()
	x := newTestServer(t, fs, nil, true)
	for i := range 3 {
		x.want(x.do("POST", "/v1/events", submitJob(fmt.Sprintf("s%d", i))), 200)
	}
	r := x.do("GET", "/v1/snapshot", "")
	x.want(r, 200)
	if r.header.Get(SeqHeader) != "3" {
		t.Fatalf("Pstate-Seq %q", r.header.Get(SeqHeader))
	}
	var st *pstate.State
	var meta checkpoint.Meta
	err := checkpoint.Decode(bytes.NewReader(r.body), func(m checkpoint.Meta, body io.Reader) error {
		var err error
		meta = m
		st, err = pstate.DecodeSnapshot(body, m.Seq)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Job("s2"); st.Seq() != 3 || !ok {
		t.Fatalf("snapshot at seq %d, job s2 present %v", st.Seq(), ok)
	}
	if meta.Counts["jobs.queued"] != 3 {
		t.Fatalf("snapshot header counts %v, want 3 queued jobs", meta.Counts)
	}

	// A checkpoint's file carries the same counts.
	x.want(x.do("POST", "/v1/checkpoint", ""), 200)
	used, _, err := checkpoint.Load(fs, "/data/snapshots", func(uint64) bool { return true },
		func(m checkpoint.Meta, body io.Reader) error {
			meta = m
			_, err := io.Copy(io.Discard, body)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Seq != 3 || meta.Counts["jobs.queued"] != 3 {
		t.Fatalf("checkpoint %s: meta %+v, want seq 3 and 3 queued jobs", used.Path, meta)
	}
}

// TestAuth: the token guards the API but not the probes; the handler
// without auth (the unix socket's) needs none.
func TestAuth(t *testing.T) {
	x := newTestServer(t, vfs.NewMem(), []byte("tok"), true)
	for _, tc := range []struct {
		hdr    []string
		status int
	}{
		{nil, 401},
		{[]string{"Authorization", "Bearer"}, 401},
		{[]string{"Authorization", "Bearer tok2"}, 401},
		{[]string{"Authorization", "Bearer to"}, 401},
		{[]string{"Authorization", "bearer tok"}, 200},
	} {
		r := x.do("GET", "/v1/status", "", tc.hdr...)
		x.want(r, tc.status)
		if tc.status == 401 && r.code(t) != CodeUnauthorized {
			t.Fatalf("%v: %s", tc.hdr, r.body)
		}
	}
	x.want(x.do("GET", "/healthz", ""), 200)
	x.want(x.do("GET", "/readyz", ""), 200)

	rec := httptest.NewRecorder()
	x.s.Handler(false).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
	if rec.Code != 200 {
		t.Fatalf("unauthenticated handler: %d %s", rec.Code, rec.Body)
	}
}

// TestMinSeq: a read with min_seq waits for the state to reach it and
// times out with 504.
func TestMinSeq(t *testing.T) {
	x := newTestServer(t, vfs.NewMem(), nil, true)
	r := x.do("GET", "/v1/jobs?min_seq=1&wait=20ms", "")
	x.want(r, 504)
	if r.code(t) != CodeTimeout {
		t.Fatal(string(r.body))
	}
	x.want(x.do("GET", "/v1/jobs?wait=2h", ""), 400)

	done := make(chan reply, 1)
	go func() { done <- x.do("GET", "/v1/jobs/w1?min_seq=1&wait=60s", "") }()
	x.want(x.do("POST", "/v1/events", submitJob("w1")), 200)
	r = <-done
	x.want(r, 200)
	if r.header.Get(SeqHeader) != "1" {
		t.Fatalf("Pstate-Seq %q", r.header.Get(SeqHeader))
	}
}

// TestBeginStopEndsWaits: a read waiting for a min_seq that will not come
// ends with 503 once the server begins to stop, not after its wait.
func TestBeginStopEndsWaits(t *testing.T) {
	x := newTestServer(t, vfs.NewMem(), nil, true)
	done := make(chan reply, 1)
	go func() { done <- x.do("GET", "/v1/status?min_seq=100&wait=60s", "") }()
	x.s.BeginStop()
	r := <-done
	x.want(r, 503)
	if r.code(t) != CodeStopping {
		t.Fatalf("wait after BeginStop: %s", r.body)
	}
	r = x.do("GET", "/readyz", "")
	x.want(r, 503)
}

// TestCheckpointDiskFull: a checkpoint that finds the disk full or failing
// (ENOSPC, EIO) turns the server read-only too; a checkpoint failing
// otherwise (here a permission error) does not.
func TestCheckpointDiskFull(t *testing.T) {
	fs := vfs.NewMem()
	x := newTestServer(t, fs, nil, true)
	x.want(x.do("POST", "/v1/events", submitJob("c1")), 200)

	fs.Inject(vfs.Fault{Op: vfs.OpCreate, Path: "/snapshots/", Err: syscall.EACCES, Times: 1})
	r := x.do("POST", "/v1/checkpoint", "")
	x.want(r, 500)
	x.want(x.do("GET", "/readyz", ""), 200)

	for _, c := range []struct {
		name, reason string
		fault        vfs.Fault
	}{
		{"disk full", "disk full", vfs.Fault{Op: vfs.OpWrite, Path: "/snapshots/",
			Err: syscall.ENOSPC}},
		{"fsync fails", "I/O error", vfs.Fault{Op: vfs.OpSync, Path: "/snapshots/",
			Times: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			x := newTestServer(t, fs, nil, true)
			x.want(x.do("POST", "/v1/events", submitJob("c1")), 200)

			fs.Inject(c.fault)
			r := x.do("POST", "/v1/checkpoint", "")
			x.want(r, 503)
			if r.code(t) != CodeReadOnly || !strings.Contains(string(r.body), c.reason) {
				t.Fatalf("checkpoint: %s", r.body)
			}
			x.want(x.do("POST", "/v1/events", submitJob("c2")), 503)
			x.want(x.do("GET", "/readyz", ""), 503)
			x.want(x.do("GET", "/v1/jobs/c1", ""), 200)
			if x.gauge("pstate_read_only") != 1 {
				t.Fatal("pstate_read_only is not 1")
			}
		})
	}
}

func TestAppendEventsAnswerMatchesJSON(t *testing.T) {
	for _, results := range [][]pstate.Result{
		{{Seq: 1}},
		{{Seq: 7, Duplicate: true}, {Seq: 9}, {Seq: 3, Duplicate: true}},
		{{Seq: 1<<64 - 1}},
	} {
		ans := eventsAnswer{Results: make([]eventsResult, len(results))}
		for i, r := range results {
			ans.Results[i] = eventsResult{Seq: r.Seq, Duplicate: r.Duplicate}
			ans.Seq = max(ans.Seq, r.Seq)
		}
		want, err := json.Marshal(ans)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEventsAnswer(nil, results); string(got) != string(want)+"\n" {
			t.Errorf("appendEventsAnswer(%v) = %s, want %s", results, got, want)
		}
	}
}

// TestReadBodyTrustsNoLength: a body that declares a megabyte makes room
// for it only as its bytes come.
func TestReadBodyTrustsNoLength(t *testing.T) {
	r := httptest.NewRequest("POST", "/v1/events", strings.NewReader(`{"type":"x"}`))
	r.ContentLength = MaxBodyBytes
	b, err := readBody(httptest.NewRecorder(), r, nil)
	if err != nil || string(b) != `{"type":"x"}` {
		t.Fatalf("readBody = %q, %v", b, err)
	}
	if cap(b) > 2*preGrowBody {
		t.Fatalf("readBody made %d bytes of room for a 12-byte body", cap(b))
	}
}
