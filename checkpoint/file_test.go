package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"syscall"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

func TestWriteListReadOS(t *testing.T) {
	dir := t.TempDir()
	testWriteListRead(t, vfs.OS, dir)
}

func TestWriteListReadMem(t *testing.T) {
	testWriteListRead(t, newMem(t), snapDir)
}

func testWriteListRead(t *testing.T, fsys vfs.FS, dir string) {
	for _, seq := range []uint64{5, 100, 20} {
		info, err := Write(fsys, dir, testMeta(seq), writeBody(testBody(seq, 50_000)))
		if err != nil {
			t.Fatal(err)
		}
		want := path.Join(dir, fmt.Sprintf("snap-%020d.pst", seq))
		if info.Path != want || info.Seq != seq {
			t.Fatalf("info %+v, want path %s", info, want)
		}
		size, err := fsys.Stat(info.Path)
		if err != nil || size != info.Bytes {
			t.Fatalf("stat %s: %d, %v; Write said %d bytes", info.Path, size, err, info.Bytes)
		}
	}

	if got := seqs(t, fsys, dir); !reflect.DeepEqual(got, []uint64{100, 20, 5}) {
		t.Fatalf("List: %v, want newest first", got)
	}
	infos, _ := List(fsys, dir)
	for _, in := range infos {
		meta, body := readSnapshot(t, fsys, in.Path)
		if !reflect.DeepEqual(meta, testMeta(in.Seq)) ||
			!bytes.Equal(body, testBody(in.Seq, 50_000)) {
			t.Fatalf("%s: read back differs", in.Path)
		}
	}

	if err := Prune(fsys, dir, 2); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, fsys, dir); !reflect.DeepEqual(got, []uint64{100, 20}) {
		t.Fatalf("after Prune(2): %v", got)
	}
	if err := Prune(fsys, dir, 0); err == nil {
		t.Fatal("Prune(0) accepted")
	}
}

func TestListIgnoresOtherNames(t *testing.T) {
	m := newMem(t)
	for _, name := range []string{
		"snap-00000000000000000007.pst.tmp", "snap-7.pst", "snap-0000000000000000000x.pst",
		"README", "snap-00000000000000000007.pstx", "snap-000000000000000000007.pst",
	} {
		if err := m.WriteFile(path.Join(snapDir, name), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Write(m, snapDir, testMeta(9), writeBody(nil)); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, m, snapDir); !reflect.DeepEqual(got, []uint64{9}) {
		t.Fatalf("List: %v", got)
	}
}

func TestRemoveTemp(t *testing.T) {
	m := newMem(t)
	keep := []string{"README", "snap-00000000000000000003.pst"}
	drop := []string{"snap-00000000000000000004.pst.tmp", "snap-junk.tmp"}
	for _, name := range append(slices.Clone(keep), drop...) {
		if err := m.WriteFile(path.Join(snapDir, name), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTemp(m, snapDir); err != nil {
		t.Fatal(err)
	}
	// The removal is durable: a crash clone shows it too.
	for _, fsys := range []vfs.FS{m, m.Crash()} {
		names, err := fsys.List(snapDir)
		if err != nil || !reflect.DeepEqual(names, keep) {
			t.Fatalf("after RemoveTemp: %v, %v; want %v", names, err, keep)
		}
	}
}

// TestWriteIsDurable: after Write returns, a crash keeps the snapshot.
func TestWriteIsDurable(t *testing.T) {
	m := newMem(t)
	info, err := Write(m, snapDir, testMeta(11), writeBody(testBody(11, 10_000)))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Crash()
	_, body := readSnapshot(t, c, info.Path)
	if !bytes.Equal(body, testBody(11, 10_000)) {
		t.Fatal("crash clone holds a different body")
	}
}

// TestWriteFailures: a snapshot that fails to write or sync leaves no file
// behind and the older snapshots as they were.
func TestWriteFailures(t *testing.T) {
	cases := []struct {
		name  string
		fault vfs.Fault
		err   error
	}{
		{"create", vfs.Fault{Op: vfs.OpCreate, Err: syscall.EIO}, syscall.EIO},
		{"ENOSPC on the first write", vfs.Fault{Op: vfs.OpWrite, Err: syscall.ENOSPC},
			syscall.ENOSPC},
		{"ENOSPC mid-file, short write", vfs.Fault{Op: vfs.OpWrite, After: 2, Prefix: 100,
			Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"EIO on write", vfs.Fault{Op: vfs.OpWrite, After: 1, Err: syscall.EIO}, syscall.EIO},
		{"EIO on sync", vfs.Fault{Op: vfs.OpSync, Err: syscall.EIO}, syscall.EIO},
		{"rename", vfs.Fault{Op: vfs.OpRename, Err: syscall.EIO}, syscall.EIO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem(t)
			if _, err := Write(m, snapDir, testMeta(10), writeBody(testBody(10, 1000))); err != nil {
				t.Fatal(err)
			}
			before, _ := m.List(snapDir)

			tc.fault.Path = ".tmp"
			m.Inject(tc.fault)
			_, err := Write(m, snapDir, testMeta(20), writeBody(randomBytes(1_000_000)))
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			m.ClearFaults()

			after, _ := m.List(snapDir)
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("files after the failure: %v, want %v", after, before)
			}
			readSnapshot(t, m, path.Join(snapDir, before[0]))
		})
	}
}

// TestWriteSyncDirFailure: the renamed file stays (its bytes are synced),
// but Write reports the error so that the log is not truncated.
func TestWriteSyncDirFailure(t *testing.T) {
	m := newMem(t)
	m.Inject(vfs.Fault{Op: vfs.OpSyncDir, Err: syscall.EIO})
	_, err := Write(m, snapDir, testMeta(3), writeBody(testBody(3, 100)))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("got %v, want EIO", err)
	}
	if got := seqs(t, m, snapDir); !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("List: %v", got)
	}
	if got := seqs(t, m.Crash(), snapDir); len(got) != 0 {
		t.Fatalf("crash clone lists %v, though the directory was never synced", got)
	}
}

// TestWriteBodyError: the encode callback's error is returned and the
// temporary file removed.
func TestWriteBodyError(t *testing.T) {
	m := newMem(t)
	errWalk := errors.New("walk failed")
	_, err := Write(m, snapDir, testMeta(3), func(w io.Writer) error {
		w.Write(randomBytes(500_000))
		return errWalk
	})
	if !errors.Is(err, errWalk) {
		t.Fatalf("got %v", err)
	}
	if names, _ := m.List(snapDir); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
}

// TestReadChecksSeqInName: a snapshot renamed to another seq is damage.
func TestReadChecksSeqInName(t *testing.T) {
	m := newMem(t)
	info, err := Write(m, snapDir, testMeta(3), writeBody(testBody(3, 100)))
	if err != nil {
		t.Fatal(err)
	}
	other := path.Join(snapDir, fileName(4))
	if err := m.Rename(info.Path, other); err != nil {
		t.Fatal(err)
	}
	err = Read(m, other, func(Meta, io.Reader) error {
		t.Fatal("fn called for a mismatched file")
		return nil
	})
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Kind != kindSeq || ce.File != other {
		t.Fatalf("got %v, want a seq error naming %s", err, other)
	}
}
