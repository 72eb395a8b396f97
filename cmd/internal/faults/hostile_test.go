package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pstate/pstate/cmd/internal/server"
	"github.com/pstate/pstate/wal/vfs"
)

// Hostile bodies for POST /v1/events, sent to the daemon's handler: each
// must get a clear 4xx naming what is wrong, change nothing, and leave the
// daemon serving.

func submitted(id string) string {
	return fmt.Sprintf(`{"type":"job.submitted","id":"e-%s","job_id":%q,"name":"n","steps":["a"]}`,
		id, id)
}

// batchOf builds {"events": [...]} of n job submissions, event bad (if
// >= 0) replaced by bad.
func batchOf(prefix string, n, bad int, badEvent string) string {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == bad {
			b.WriteString(badEvent)
			continue
		}
		b.WriteString(submitted(fmt.Sprintf("%s%04d", prefix, i)))
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestHostileBodies(t *testing.T) {
	m := openServer(t, vfs.NewMem())
	t.Cleanup(func() { _ = m.s.Close(t.Context()) })

	deep := strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat(`}`, 100000)
	deepArr := strings.Repeat(`[`, 200000) + strings.Repeat(`]`, 200000)
	big := `{"type":"job.submitted","id":"big","job_id":"big","name":"` +
		strings.Repeat("x", server.MaxBodyBytes) + `","steps":["a"]}`
	cases := []struct {
		name, body string
		status     int
		says       []string // substrings the error message must hold
	}{
		{"huge attempt", `{"type":"step.started","job_id":"j","step":"a","attempt":1e400}`,
			400, []string{"attempt"}},
		{"huge integer", `{"type":"step.started","job_id":"j","step":"a",` +
			`"attempt":123456789012345678901234567890}`, 400, []string{"attempt"}},
		{"fractional attempt", `{"type":"step.started","job_id":"j","step":"a","attempt":1.5}`,
			400, []string{"attempt"}},
		{"exit code out of range", `{"type":"step.finished","job_id":"j","step":"a",` +
			`"attempt":1,"status":"failed","exit_code":99999999999}`, 400, []string{"exit_code"}},
		{"negative attempt", `{"type":"step.started","job_id":"j","step":"a","attempt":-1}`,
			400, []string{"attempt"}},
		{"deep nesting in labels", `{"type":"job.submitted","job_id":"j","name":"n",` +
			`"steps":["a"],"labels":` + deep + `}`, 400, nil},
		{"deep array", deepArr, 400, nil},
		{"invalid UTF-8 in job_id", "{\"type\":\"job.submitted\",\"job_id\":\"j\xff\xfe\"," +
			"\"name\":\"n\",\"steps\":[\"a\"]}", 400, []string{"job_id", "UTF-8"}},
		{"invalid UTF-8 in a label key", "{\"type\":\"job.submitted\",\"job_id\":\"j\"," +
			"\"name\":\"n\",\"steps\":[\"a\"],\"labels\":{\"\xc3\x28\":\"v\"}}", 400,
			[]string{"labels"}},
		{"oversized id", submittedWithID(strings.Repeat("i", 129)), 400, []string{"id"}},
		{"oversized job_id", `{"type":"job.submitted","job_id":"` + strings.Repeat("j", 129) +
			`","name":"n","steps":["a"]}`, 400, []string{"job_id"}},
		{"NUL in job_id", `{"type":"job.submitted","job_id":"a\u0000b","name":"n",` +
			`"steps":["a"]}`, 400, []string{"job_id"}},
		{"null event", `null`, 400, nil},
		{"unknown type", `{"type":"job.exploded","job_id":"j"}`, 400, []string{"type"}},
		{"bad event in a full batch", batchOf("full", 1000, 537, `{"type":"job.submitted",`+
			`"job_id":"x","steps":"not a list","name":"n"}`), 400, []string{"537", "steps"}},
		{"conflict in a full batch", batchOf("conf", 1000, 998, `{"type":"job.started",`+
			`"job_id":"nobody","worker":"w"}`), 409, []string{"998", "nobody"}},
		{"batch of 1001", batchOf("over", 1001, -1, ""), 413, nil},
		{"1 MiB + 1 body", big[:server.MaxBodyBytes+1], 413, nil},
		{"1 MiB + 1 valid event", big, 413, nil},
		{"effect flag", `{"type":"job.purged","job_id":"j","effect":true}`, 400,
			[]string{"effect"}},
	}
	for _, c := range cases {
		code, body := m.do("POST", "/v1/events", c.body)
		if code != c.status {
			t.Errorf("%s: status %d, want %d: %.300s", c.name, code, c.status, body)
			continue
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" {
			t.Errorf("%s: not an error body: %.300s", c.name, body)
			continue
		}
		for _, s := range c.says {
			if !strings.Contains(e.Error.Message, s) {
				t.Errorf("%s: message %q does not name %q", c.name, e.Error.Message, s)
			}
		}
	}
	// Nothing of the refused batches was applied; the daemon still serves.
	if code, body := m.do("GET", "/v1/status", ""); code != http.StatusOK ||
		!strings.Contains(body, `"seq":0`) {
		t.Fatalf("after hostile bodies: %d %s", code, body)
	}
	if code, body := m.do("POST", "/v1/events", batchOf("ok", 1000, -1, "")); code != 200 {
		t.Fatalf("a full valid batch after hostile bodies: %d %.300s", code, body)
	}
	t.Logf("SUMMARY hostile bodies: %d cases, each a 4xx naming the fault; nothing applied",
		len(cases))
}

func submittedWithID(id string) string {
	return fmt.Sprintf(`{"type":"job.submitted","id":%q,"job_id":"j","name":"n","steps":["a"]}`,
		id)
}
