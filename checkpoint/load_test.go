package checkpoint

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

// loaded records what Load's fn was given; like the daemon's state decoder,
// it throws away what it built when it is called again.
type loaded struct {
	calls int
	meta  Meta
	body  []byte
}

func (l *loaded) fn(meta Meta, body io.Reader) error {
	l.calls++
	l.meta, l.body = meta, nil
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	l.meta, l.body = meta, b
	return nil
}

// coversFrom is covers for a log whose first seq is first.
func coversFrom(first uint64) func(uint64) bool {
	return func(seq uint64) bool { return first <= seq+1 }
}

// writeSnapshots writes one snapshot per seq into snapDir of a new Mem.
func writeSnapshots(t *testing.T, seqs ...uint64) (*vfs.Mem, []Info) {
	t.Helper()
	m := newMem(t)
	var infos []Info
	for _, seq := range seqs {
		info, err := Write(m, snapDir, testMeta(seq), writeBody(testBody(seq, 400_000)))
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	return m, infos
}

// damage flips one byte of a file at off.
func damage(t *testing.T, m *vfs.Mem, p string, off int) {
	t.Helper()
	b, err := m.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x10
	if err := m.WriteFile(p, b); err != nil {
		t.Fatal(err)
	}
}

// cut shortens a file to n bytes.
func cut(t *testing.T, m *vfs.Mem, p string, n int) {
	t.Helper()
	b, err := m.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile(p, b[:n]); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNewest(t *testing.T) {
	m, infos := writeSnapshots(t, 10, 20)
	var l loaded
	used, damaged, err := Load(m, snapDir, coversFrom(21), l.fn)
	if err != nil || len(damaged) != 0 {
		t.Fatalf("Load: %v, damaged %v", err, damaged)
	}
	if used != infos[1] || l.calls != 1 || !bytes.Equal(l.body, testBody(20, 400_000)) {
		t.Fatalf("used %+v after %d calls", used, l.calls)
	}
}

// TestLoadFallsBack: a damaged newest snapshot is reported and the older
// one used, because the log still covers it.
func TestLoadFallsBack(t *testing.T) {
	cases := []struct {
		name string
		harm func(t *testing.T, m *vfs.Mem, p string)
		kind string
	}{
		{"header", func(t *testing.T, m *vfs.Mem, p string) { damage(t, m, p, 18) },
			kindHeaderCRC},
		{"body", func(t *testing.T, m *vfs.Mem, p string) { damage(t, m, p, 30_000) },
			kindChunkCRC},
		{"truncated", func(t *testing.T, m *vfs.Mem, p string) { cut(t, m, p, 1000) },
			kindTruncated},
		{"last byte", func(t *testing.T, m *vfs.Mem, p string) {
			b, _ := m.ReadFile(p)
			damage(t, m, p, len(b)-1)
		}, kindTrailerCRC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, infos := writeSnapshots(t, 10, 20)
			tc.harm(t, m, infos[1].Path)

			var l loaded
			used, damaged, err := Load(m, snapDir, coversFrom(11), l.fn)
			if err != nil {
				t.Fatal(err)
			}
			if used.Seq != 10 || l.meta.Seq != 10 || !bytes.Equal(l.body, testBody(10, 400_000)) {
				t.Fatalf("used %+v, fn left seq %d", used, l.meta.Seq)
			}
			var ce *CorruptionError
			if len(damaged) != 1 || !errors.As(damaged[0], &ce) ||
				ce.File != infos[1].Path || ce.Kind != tc.kind {
				t.Fatalf("damaged %v, want one %q error naming %s", damaged, tc.kind,
					infos[1].Path)
			}
		})
	}
}

// TestLoadGap: the newest is damaged and the log no longer covers the
// older one: the error names both files, the offset and the missing seq.
func TestLoadGap(t *testing.T) {
	m, infos := writeSnapshots(t, 10, 20)
	damage(t, m, infos[1].Path, 30_000)

	var l loaded
	_, damaged, err := Load(m, snapDir, coversFrom(21), l.fn)
	var gap *GapError
	if !errors.As(err, &gap) || gap.Snapshot != infos[0] || len(damaged) != 1 {
		t.Fatalf("got %v (damaged %v), want a gap at %+v", err, damaged, infos[0])
	}
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.File != infos[1].Path {
		t.Fatalf("%v does not unwrap to the damage of %s", err, infos[1].Path)
	}
	for _, want := range []string{infos[1].Path, "damaged at offset", infos[0].Path,
		"at seq 10", "needs the log from seq 11"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not say %q", err, want)
		}
	}
	if l.calls != 1 {
		t.Fatalf("fn called %d times, want only for the damaged one", l.calls)
	}
}

func TestLoadNewestNotCovered(t *testing.T) {
	m, infos := writeSnapshots(t, 10, 20)
	var l loaded
	_, damaged, err := Load(m, snapDir, coversFrom(30), l.fn)
	var gap *GapError
	if !errors.As(err, &gap) || gap.Snapshot != infos[1] || len(damaged) != 0 || l.calls != 0 {
		t.Fatalf("got %v, damaged %v, %d calls", err, damaged, l.calls)
	}
}

func TestLoadAllDamaged(t *testing.T) {
	m, infos := writeSnapshots(t, 10, 20)
	for _, in := range infos {
		damage(t, m, in.Path, 200)
	}

	// The log holds the whole history: start from the empty state.
	var l loaded
	used, damaged, err := Load(m, snapDir, coversFrom(1), l.fn)
	if err != nil || used != (Info{}) || len(damaged) != 2 {
		t.Fatalf("got %+v, %v, damaged %v", used, err, damaged)
	}

	_, damaged, err = Load(m, snapDir, coversFrom(5), l.fn)
	var gap *GapError
	if !errors.As(err, &gap) || len(damaged) != 2 ||
		!strings.Contains(err.Error(), "no older snapshot") {
		t.Fatalf("got %v, damaged %v", err, damaged)
	}
}

func TestLoadNoSnapshot(t *testing.T) {
	m := newMem(t)
	var l loaded
	used, damaged, err := Load(m, snapDir, coversFrom(1), l.fn)
	if err != nil || used != (Info{}) || damaged != nil || l.calls != 0 {
		t.Fatalf("fresh dir: %+v, %v, %v", used, damaged, err)
	}
	_, _, err = Load(m, snapDir, coversFrom(2), l.fn)
	var gap *GapError
	if !errors.As(err, &gap) || !strings.Contains(err.Error(), "does not start at seq 1") {
		t.Fatalf("log without its start: %v", err)
	}
}

// TestLoadFnError: fn failing on a sound snapshot is not damage; Load does
// not fall back past it.
func TestLoadFnError(t *testing.T) {
	m, infos := writeSnapshots(t, 10, 20)
	errFn := errors.New("unknown record")
	calls := 0
	_, damaged, err := Load(m, snapDir, coversFrom(1), func(Meta, io.Reader) error {
		calls++
		return errFn
	})
	if !errors.Is(err, errFn) || !strings.Contains(err.Error(), infos[1].Path) ||
		len(damaged) != 0 || calls != 1 {
		t.Fatalf("got %v, damaged %v, %d calls", err, damaged, calls)
	}
}

func TestLoadProgress(t *testing.T) {
	m, infos := writeSnapshots(t, 10)
	var reads []int64
	var l loaded
	_, _, err := LoadWith(m, snapDir, coversFrom(1), l.fn, LoadOptions{
		Progress: func(p string, read, size int64) {
			if p != infos[0].Path || size != infos[0].Bytes {
				t.Errorf("progress for %s of %d bytes", p, size)
			}
			reads = append(reads, read)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(reads) == 0 || reads[len(reads)-1] != infos[0].Bytes ||
		!reflect.DeepEqual(reads, sortedCopy(reads)) {
		t.Fatalf("progress %v, want rising to %d", reads, infos[0].Bytes)
	}
}

func sortedCopy(s []int64) []int64 {
	c := append([]int64(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}
