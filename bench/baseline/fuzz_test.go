package baseline

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 7, []byte(`[{"type":"job.started","job_id":"a"}]`)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, payload, n, kind, err := decodeRecord(b)
		if err != nil || kind != "" {
			if err != nil && !errors.Is(err, errTorn) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n > len(b) || n != headerSize+len(payload) {
			t.Fatalf("n %d of %d bytes, payload %d", n, len(b), len(payload))
		}
		if again := appendRecord(nil, seq, payload); !bytes.Equal(again, b[:n]) {
			t.Fatal("re-encoding a decoded record differs")
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	var buf bytes.Buffer
	st := newState()
	st.Seq = 3
	st.Jobs["j"] = &Job{ID: "j", State: StateQueued, Steps: []Step{{Name: "a"}}}
	if _, err := writeSnapshotTo(&buf, st); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeSnapshot("snap", bytes.NewReader(b))
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a CorruptionError", err)
			}
			return
		}
		for id, j := range st.Jobs {
			if j.ID != id {
				t.Fatal("decoded job does not match its key")
			}
		}
	})
}
