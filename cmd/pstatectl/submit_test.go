package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// eventsDaemon answers POST /v1/events with consecutive seqs, or with a 409
// naming index 2 for a batch holding an event of type "bad".
func eventsDaemon(t *testing.T) *fakeDaemon {
	var seq uint64
	return newFakeDaemon(t, map[string]http.HandlerFunc{
		"POST /v1/events": func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Events []map[string]any `json:"events"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				answerError(w, 400, "bad_request", err.Error())
				return
			}
			for i, e := range body.Events {
				if e["type"] == "bad" {
					answerError(w, 409, "conflict", fmt.Sprintf("event %d: job \"x\": refused", i))
					return
				}
			}
			res := []map[string]any{}
			for range body.Events {
				seq++
				res = append(res, map[string]any{"seq": seq, "duplicate": false})
			}
			answerJSON(w, 200, map[string]any{"seq": seq, "results": res})
		},
	})
}

func TestSubmitBatches(t *testing.T) {
	f := eventsDaemon(t)
	var in strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&in, "{\"type\":\"job.submitted\",\"job_id\":\"j%d\"}\n", i)
	}
	path := filepath.Join(t.TempDir(), "events.ndjson")
	os.WriteFile(path, []byte(in.String()), 0o600)
	code, out, stderr := runCLI(t, "", "--addr", f.addr(), "submit", "--batch", "1000", path)
	if code != 0 || out != "last seq 2500 (2500 events, 0 duplicates)\n" {
		t.Fatalf("exit %d out %q err %q", code, out, stderr)
	}
	var sizes []int
	for _, b := range f.bodies {
		var body struct{ Events []json.RawMessage }
		json.Unmarshal(b, &body)
		sizes = append(sizes, len(body.Events))
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("batches %v", sizes)
	}
}

// TestSubmitSplitsAtOneMiB sends events of about 300 KiB: a request holds
// three of them at most, whatever --batch says.
func TestSubmitSplitsAtOneMiB(t *testing.T) {
	f := eventsDaemon(t)
	pad := strings.Repeat("x", 300<<10)
	var in strings.Builder
	for i := range 7 {
		fmt.Fprintf(&in, "{\"type\":\"t\",\"id\":\"%d\",\"pad\":\"%s\"}\n", i, pad)
	}
	code, out, stderr := runCLI(t, in.String(), "--addr", f.addr(), "submit")
	if code != 0 || !strings.HasPrefix(out, "last seq 7 ") {
		t.Fatalf("exit %d out %q err %q", code, out, stderr)
	}
	for _, b := range f.bodies {
		if len(b) >= maxBatchBytes {
			t.Fatalf("request of %d bytes", len(b))
		}
	}
	if len(f.bodies) != 3 {
		t.Fatalf("%d requests, want 3", len(f.bodies))
	}
}

func TestSubmitErrorNamesLine(t *testing.T) {
	f := eventsDaemon(t)
	in := "{\"type\":\"a\"}\n{\"type\":\"a\"}\n\n{\"type\":\"a\"}\n{\"type\":\"bad\"}\n"
	code, _, stderr := runCLI(t, in, "--addr", f.addr(), "submit", "--batch", "2")
	// The first batch (lines 1-2) went through; the second (lines 4-5) was
	// refused at its index 1, which is line 5.
	if code != 1 || !strings.Contains(stderr, "line 5: server answered 409 conflict") ||
		!strings.Contains(stderr, "2 events before the failed batch were submitted (last seq 2)") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestProgressLine(t *testing.T) {
	p := newProgress(nil, 1000)
	got := p.line(50, 500, 1e9)
	if !strings.Contains(got, " 50%") || !strings.Contains(got, "50/~100 events") ||
		!strings.Contains(got, "50 events/s") {
		t.Fatalf("%q", got)
	}
	p = newProgress(nil, 0)
	if got := p.line(2000, 10, 1e9); !strings.Contains(got, "2000 events  2.0k events/s") {
		t.Fatalf("%q", got)
	}
	if isTerminal(&strings.Builder{}) {
		t.Fatal("a builder is a terminal")
	}
}

func TestEventIndex(t *testing.T) {
	for msg, want := range map[string]int{
		"event 0: bad":           0,
		"event 12: job \"j\": x": 12,
		"event x: y":             -1,
		"event -1: y":            -1,
		"job j: y":               -1,
		"event 3":                -1,
	} {
		if got := eventIndex(msg); got != want {
			t.Errorf("%q: %d, want %d", msg, got, want)
		}
	}
}
