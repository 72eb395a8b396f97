package faults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pstate/pstate/pstate"
)

// fullBatch builds {"events": [...]} of pstate.MaxBatchEvents valid job
// submissions with ev at index pos.
func fullBatch(ev []byte, pos int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range pstate.MaxBatchEvents {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == pos {
			b.Write(ev)
			continue
		}
		fmt.Fprintf(&b, `{"type":"job.submitted","id":"f%d","job_id":"f%d","name":"n",`+
			`"steps":["a"]}`, i, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// FuzzEventInFullBatch puts one arbitrary JSON value among 999 valid
// events of a full batch. The decoder must accept the batch whole or
// refuse it with an *InputError naming exactly that index; whatever it
// accepts holds only valid UTF-8 and ids within their limit.
func FuzzEventInFullBatch(f *testing.F) {
	f.Add([]byte(`{"type":"job.submitted","job_id":"x","name":"n","steps":["a"]}`), uint16(0))
	f.Add([]byte(`{"type":"step.started","job_id":"x","step":"a","attempt":1e400}`), uint16(537))
	f.Add([]byte(`{"type":"job.submitted","job_id":"x","name":"n","steps":"a"}`), uint16(999))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`), uint16(1))
	f.Add([]byte("{\"type\":\"job.submitted\",\"job_id\":\"\xff\",\"name\":\"n\",\"steps\":[\"a\"]}"),
		uint16(5))
	f.Fuzz(func(t *testing.T, ev []byte, at uint16) {
		if !json.Valid(ev) {
			return // not a value: it would change the batch's structure
		}
		pos := int(at) % pstate.MaxBatchEvents
		events, err := pstate.DecodeEvents(fullBatch(ev, pos))
		if err != nil {
			var ie *pstate.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("refusal %T %v is not an *InputError", err, err)
			}
			if ie.Index != pos || ie.Message == "" {
				t.Fatalf("refusal names event %d (%v), the bad one is %d", ie.Index, err, pos)
			}
			return
		}
		if len(events) != pstate.MaxBatchEvents {
			t.Fatalf("accepted %d events of %d", len(events), pstate.MaxBatchEvents)
		}
		e := events[pos]
		for _, s := range []string{e.Type, e.ID, e.JobID, e.Name, e.Worker, e.Step,
			e.Status, e.Reason, e.WorkspaceID, e.Path} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) &&
				!bytes.Contains(ev, []byte(string(utf8.RuneError))) &&
				!bytes.Contains(ev, []byte(`\ufffd`)) && !bytes.Contains(ev, []byte(`\uFFFD`)) {
				t.Fatalf("accepted a string that was not valid UTF-8: %q", s)
			}
		}
		if len(e.ID) > pstate.MaxIDBytes || len(e.JobID) > pstate.MaxIDBytes {
			t.Fatalf("accepted an id over %d bytes", pstate.MaxIDBytes)
		}
	})
}
