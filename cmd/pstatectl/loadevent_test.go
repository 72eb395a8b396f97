package main

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/pstate/pstate/pstate"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `q"b\s`, "\n\r\t\x00\x1f\x7f", "é✓", "\xff\xfe", "a\u2028b"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			const alphabet = "a\"\\\x01\n\xc3\xa9\xff\xe2\x9c\x93"
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q: round trip %q, encoding/json gives %q", s, back, wantBack)
		}
	}
}

// TestLoadEventEncoding decodes generated events with the daemon's decoder
// and compares every field.
func TestLoadEventEncoding(t *testing.T) {
	g := newGenerator(defaultModel, 11, "E", 2)
	n := 0
	for range 50 {
		j := g.newJob()
		for j.phase != phDone {
			j.waiting = false
			e := g.next(j)
			b := e.appendJSON(nil)
			got, err := pstate.DecodeEvents(b)
			if err != nil || len(got) != 1 {
				t.Fatalf("%s: %v", b, err)
			}
			if want := wantEvent(&e); !reflect.DeepEqual(got[0], want) {
				t.Fatalf("%s decodes as\n%+v, want\n%+v", b, got[0], want)
			}
			n++
		}
	}
	if n < 500 {
		t.Fatalf("only %d events", n)
	}
}

// wantEvent is the pstate.Event a loadEvent stands for.
func wantEvent(e *loadEvent) pstate.Event {
	p := pstate.Event{Type: e.Type, ID: e.ID, JobID: e.JobID, Name: e.Name, Steps: e.Steps,
		Worker: e.Worker, Step: e.Step, Attempt: e.Attempt, Status: e.Status,
		ExitCode: e.ExitCode, Reason: e.Reason, WorkspaceID: e.WorkspaceID, Path: e.Path,
		Time: time.Time{}}
	if e.Type == evJobSubmitted {
		p.Labels = map[string]string{}
		for _, kv := range e.Labels {
			p.Labels[kv[0]] = kv[1]
		}
	}
	return p
}
