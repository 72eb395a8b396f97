package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const jobJSON = `{"job_id":"j1","name":"build","labels":{"team":"web","env":"x"},
"state":"running","steps":[
 {"name":"checkout","attempts":[{"attempt":1,"status":"succeeded","started_at":"2026-01-02T03:04:05.123Z","finished_at":"2026-01-02T03:04:06Z","exit_code":0}]},
 {"name":"test","attempts":[{"attempt":1,"status":"failed","started_at":"2026-01-02T03:04:07Z","finished_at":"2026-01-02T03:04:08Z","exit_code":3},
                            {"attempt":2,"status":"running","started_at":"2026-01-02T03:04:09Z","finished_at":null,"exit_code":null}]},
 {"name":"deploy","attempts":[]}],
"workspaces":["w1","w2"],"submitted_at":"2026-01-02T03:04:00Z","finished_at":null}`

func TestJobsTable(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/jobs": func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("state") != "running" || r.URL.Query().Get("label") != "team:web" {
				answerError(w, 400, "bad_request", "query "+r.URL.RawQuery)
				return
			}
			w.Write([]byte(`{"seq":9,"jobs":[` + jobJSON + `],"next":""}`))
		},
	})
	code, out, stderr := runCLI(t, "", "--addr", f.addr(), "jobs", "--state", "running",
		"--label", "team:web")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "" +
		"JOB ID  NAME   STATE    STEPS  ATTEMPTS  LABELS          SUBMITTED            FINISHED\n" +
		"j1      build  running  1/3    3         env=x,team=web  2026-01-02 03:04:00  -\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

func TestJobDetail(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/jobs/{id}": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"seq":9,"job":` + jobJSON + `}`))
		},
	})
	code, out, stderr := runCLI(t, "", "job", "--addr", f.addr(), "j1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"state       running",
		"workspaces  w1,w2",
		"STEP      ATTEMPT  STATUS     STARTED              FINISHED             EXIT",
		"checkout  1        succeeded  2026-01-02 03:04:05  2026-01-02 03:04:06  0",
		"test      2        running    2026-01-02 03:04:09  -                    -",
		"deploy    -        pending    -                    -                    -",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runCLI(t, "", "job", "--addr", f.addr(), "--json", "j1")
	if code != 0 || !json.Valid([]byte(out)) || !strings.HasPrefix(out, `{"seq":9,"job":`) {
		t.Fatalf("--json: exit %d %q", code, out)
	}
}

// TestJobsAllFollowsCursors serves three pages and checks --all reads them
// in order, and that a repeating cursor is an error rather than a loop.
func TestJobsAllFollowsCursors(t *testing.T) {
	pages := map[string]string{
		"":   `{"seq":5,"jobs":[{"job_id":"a","state":"queued"}],"next":"c1"}`,
		"c1": `{"seq":6,"jobs":[{"job_id":"b","state":"queued"}],"next":"c2"}`,
		"c2": `{"seq":7,"jobs":[{"job_id":"c","state":"failed"}],"next":""}`,
		"x":  `{"seq":7,"jobs":[{"job_id":"d","state":"failed"}],"next":"x"}`,
	}
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/jobs": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(pages[r.URL.Query().Get("after")]))
		},
	})
	code, out, _ := runCLI(t, "", "--addr", f.addr(), "jobs", "--all")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[3], "c ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "--addr", f.addr(), "jobs", "--all", "--json")
	var doc struct {
		Seq  uint64            `json:"seq"`
		Jobs []json.RawMessage `json:"jobs"`
		Next string            `json:"next"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Jobs) != 3 || doc.Seq != 7 {
		t.Fatalf("--all --json: exit %d %s", code, out)
	}
	code, _, stderr := runCLI(t, "", "--addr", f.addr(), "jobs", "--all", "--after", "x")
	if code != 1 || !strings.Contains(stderr, `repeated cursor "x"`) {
		t.Fatalf("repeating cursor: exit %d %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "--addr", f.addr(), "jobs")
	if code != 0 || !strings.Contains(stderr, "--after c1") {
		t.Fatalf("one page: exit %d %s", code, stderr)
	}
}

func TestStatusAndWorkspaces(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"GET /v1/status": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"seq":12,"durable_seq":12,"jobs":{"queued":1,"running":2,
"succeeded":3,"failed":0,"canceled":0},"workspaces":{"allocated":4,"released":5},
"wal_bytes":2048,"last_checkpoint":{"seq":10,"time":"2026-01-02T03:04:05Z","bytes":512,
"duration_ms":1.5},"sync":"always","version":"v1"}`))
		},
		"GET /v1/workspaces": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"seq":12,"workspaces":[{"workspace_id":"w1","job_id":"j1",
"path":"/p","state":"allocated","allocated_at":"2026-01-02T03:04:05Z","released_at":null}],"next":""}`))
		},
	})
	code, out, _ := runCLI(t, "", "--addr", f.addr(), "status")
	for _, want := range []string{
		"seq                   12\n",
		"wal                   2.0 KiB (2048 bytes)\n",
		"last checkpoint       seq 10 at 2026-01-02 03:04:05, 512 B, 1.5 ms\n",
		"jobs running          2\n",
		"workspaces released   5\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "", "--addr", f.addr(), "workspaces")
	want := "WORKSPACE ID  JOB ID  STATE      PATH  ALLOCATED            RELEASED\n" +
		"w1            j1      allocated  /p    2026-01-02 03:04:05  -\n"
	if code != 0 || out != want {
		t.Fatalf("workspaces: exit %d\n%s", code, out)
	}
}

func TestCheckpointCommand(t *testing.T) {
	f := newFakeDaemon(t, map[string]http.HandlerFunc{
		"POST /v1/checkpoint": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"seq":77,"bytes":4096,"duration_ms":12.5}`))
		},
	})
	code, out, _ := runCLI(t, "", "--addr", f.addr(), "checkpoint")
	if code != 0 || out != "checkpoint at seq 77: 4096 bytes (4.0 KiB) in 12.5 ms\n" {
		t.Fatalf("exit %d %q", code, out)
	}
}

func TestCellsAreOneLine(t *testing.T) {
	var b strings.Builder
	tb := newTable(&b, "A", "B")
	tb.row("x\ty", "line\nbreak")
	tb.flush()
	if strings.Count(b.String(), "\n") != 2 || strings.Contains(b.String(), "\t") {
		t.Fatalf("%q", b.String())
	}
}
