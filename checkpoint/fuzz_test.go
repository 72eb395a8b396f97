package checkpoint

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var updateSeeds = flag.Bool("update-seeds", false,
	"rewrite testdata/fuzz/FuzzDecode from seedSnapshots")

// FuzzDecode feeds arbitrary bytes to the snapshot decoder. It must not
// panic or hang; every refusal must be a *CorruptionError with an offset
// inside the input; and what it accepts must survive a re-encode.
//
// Its seeds are the files under testdata/fuzz/FuzzDecode (seedSnapshots).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, body, err := decodeBytes(data)
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("refused with %v, not a *CorruptionError", err)
			}
			if ce.Offset < 0 || ce.Offset > int64(len(data)) {
				t.Fatalf("offset %d outside the %d bytes: %v", ce.Offset, len(data), err)
			}
			return
		}
		again := encodeBytes(t, meta, body)
		meta2, body2, err := decodeBytes(again)
		if err != nil || !reflect.DeepEqual(meta, meta2) || !bytes.Equal(body, body2) {
			t.Fatalf("re-encoded snapshot differs: %v", err)
		}
	})
}

type seed struct {
	name string
	data []byte
}

// seedSnapshots is the seed corpus: sound snapshots, cut ones, damaged
// ones and a hostile zstd frame in sound framing.
func seedSnapshots(t testing.TB) []seed {
	small := encodeBytes(t, testMeta(3), testBody(3, 300))
	empty := encodeBytes(t, Meta{Counts: map[string]uint64{}}, nil)

	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	body := testBody(4, 2000)
	chunked := frameChunks(testMeta(4), enc.EncodeAll(body, nil), uint64(len(body)), 64)
	enc.Close()

	flipped := bytes.Clone(small)
	flipped[len(flipped)/2] ^= 1
	return []seed{
		{"valid_empty", empty},
		{"valid_small", small},
		{"valid_small_chunks", chunked},
		{"truncated_header", small[:24]},
		{"truncated_body", small[:len(small)/2]},
		{"truncated_trailer", small[:len(small)-5]},
		{"damaged_chunk", flipped},
		{"trailing_data", append(bytes.Clone(small), 0)},
		{"huge_window", frameSnapshot(testMeta(1), hugeWindowFrame(), 1)},
		{"huge_content_size", frameSnapshot(testMeta(1), hugeContentFrame(), 1)},
	}
}

// TestFuzzSeedCorpus checks that testdata/fuzz/FuzzDecode holds the seeds
// seedSnapshots builds (go test -run FuzzSeedCorpus -update-seeds rewrites
// them), so that a format change cannot leave a stale corpus behind.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for _, s := range seedSnapshots(t) {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s.data)) + ")\n"
		p := filepath.Join(dir, s.name)
		if *updateSeeds {
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Fatalf("%s is stale or missing (%v): run go test -run FuzzSeedCorpus "+
				"-update-seeds ./checkpoint", p, err)
		}
	}
}
