package datadir

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

func kinds(fs []Finding) map[string]int {
	m := map[string]int{}
	for _, f := range fs {
		m[f.Kind]++
	}
	return m
}

func TestVerifySound(t *testing.T) {
	f := newFixture(t, 5)
	f.snapshot(t, 3)
	got, err := VerifyFS(f.fs, dir)
	if err != nil || len(got) != 0 {
		t.Fatalf("findings %v, err %v", got, err)
	}
}

func TestVerifyFindings(t *testing.T) {
	f := newFixture(t, 6)
	f.snapshot(t, 2)
	bad := f.snapshot(t, 5)
	f.damage(t, bad.Path)
	names, _ := f.fs.List(walDir)
	walPath := filepath.Join(walDir, names[0])
	b, _ := f.fs.ReadFile(walPath)
	// Half a record at the end: a torn tail, reported but no fault.
	if err := f.fs.WriteFile(walPath, append(b, 0x2a, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := f.fs.WriteFile(filepath.Join(snapDir, "x.pst.tmp"), nil); err != nil {
		t.Fatal(err)
	}
	// Verify is read-only: any operation that changes something fails it.
	f.fs.SetOnOp(func(op vfs.Op, path string) error {
		switch op {
		case vfs.OpCreate, vfs.OpOpenRW, vfs.OpWrite, vfs.OpTruncate, vfs.OpRename,
			vfs.OpRemove, vfs.OpMkdirAll, vfs.OpSync, vfs.OpSyncDir:
			t.Errorf("verify did %v on %s", op, path)
			return errors.New("read-only")
		}
		return nil
	})
	got, err := VerifyFS(f.fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	k := kinds(got)
	if k[KindTornTail] != 1 || k[KindTemp] != 1 || len(got) != 3 {
		t.Fatalf("findings %v", got)
	}
	for _, g := range got {
		switch g.Kind {
		case KindTornTail:
			if g.Fault() || g.File != walPath || g.Offset != int64(len(b)) {
				t.Errorf("torn tail finding %v; want %s at %d", g, walPath, len(b))
			}
		case KindTemp:
			if g.Fault() {
				t.Errorf("temp finding is a fault: %v", g)
			}
		default:
			if !g.Fault() || g.File != bad.Path {
				t.Errorf("snapshot finding %v; want a fault in %s", g, bad.Path)
			}
		}
	}
	// Verify changed nothing: the torn tail is still there.
	if after, _ := f.fs.ReadFile(walPath); len(after) != len(b)+5 {
		t.Fatalf("verify changed the log: %d bytes, want %d", len(after), len(b)+5)
	}
	f.fs.SetOnOp(nil)

	// Damage in the middle of the log is a fault with its offset.
	f.damage(t, walPath)
	got, err = VerifyFS(f.fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range got {
		if g.File == walPath && g.Fault() && g.Offset > 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no fault in the log: %v", got)
	}
}

// TestVerifyGap: a log that starts after the newest sound snapshot.
func TestVerifyGap(t *testing.T) {
	f := newFixture(t, 6)
	f.truncate(t, 4) // no snapshot at all: records 1..3 are gone
	got, err := VerifyFS(f.fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if k := kinds(got); k[KindGap] != 1 {
		t.Fatalf("findings %v", got)
	}
}

// TestVerifyGapEmptyLog: an empty log based after a damaged snapshot that
// no sound one reaches is a gap, as recovery finds too.
func TestVerifyGapEmptyLog(t *testing.T) {
	f := newFixture(t, 6)
	f.snapshot(t, 2)
	newest := f.snapshot(t, 6)
	f.truncate(t, 7)
	f.damage(t, newest.Path)
	got, err := VerifyFS(f.fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	if k := kinds(got); k[KindGap] != 1 {
		t.Fatalf("findings %v", got)
	}
	if _, err := f.recover(t); err == nil {
		t.Fatal("recovery accepted what verify calls a gap")
	}
}
