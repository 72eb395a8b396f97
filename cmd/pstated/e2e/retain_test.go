package e2e

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"
)

// TestRetainFinished: with --retain-finished, a finished job is purged by
// the daemon (a record of its own, so the wait is a min_seq read). The
// stop is by SIGINT.
func TestRetainFinished(t *testing.T) {
	d := start(t, t.TempDir(), nil, "--retain-finished", "1ms")
	for _, e := range []map[string]any{
		ev("type", "job.submitted", "job_id", "r1", "name", "n", "steps", []string{"s"}),
		ev("type", "job.started", "job_id", "r1", "worker", "w"),
		ev("type", "step.started", "job_id", "r1", "step", "s", "attempt", 1),
		ev("type", "step.finished", "job_id", "r1", "step", "s", "attempt", 1,
			"status", "succeeded", "exit_code", 0),
	} {
		decodeSubmitted(t, d.post("/v1/events", e))
	}
	a := d.get("/v1/status")
	seq := uint64(a.json(t)["seq"].(float64))
	// Nothing else writes: the next record is the purge.
	a = d.get(fmt.Sprintf("/v1/jobs/r1?min_seq=%d&wait=25s", seq+1))
	mustStatus(t, "job after its purge", a, http.StatusNotFound)

	if err := d.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := d.Wait(); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
}
