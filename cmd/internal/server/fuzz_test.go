package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pstate/pstate/wal/vfs"
)

// FuzzEvents posts arbitrary bodies to POST /v1/events on one in-process
// server: every answer must be one of the contract's statuses with a
// well-formed body (an error body unless 200), and never a 500.
func FuzzEvents(f *testing.F) {
	f.Add([]byte(`{"type":"job.submitted","job_id":"j","name":"n","steps":["a"]}`))
	f.Add([]byte(`{"events":[{"type":"job.started","job_id":"j","worker":"w"}]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`[]`))
	s := New(Config{DataDir: "/fuzz", FS: vfs.NewMem(), Registerer: prometheus.NewRegistry()})
	if err := s.Open(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close(context.Background()) })
	h := s.Handler(false)

	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/events", bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusOK:
			var a eventsAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || len(a.Results) == 0 {
				t.Fatalf("200 with body %q", rec.Body)
			}
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" ||
				e.Error.Message == "" {
				t.Fatalf("%d with body %q", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
