package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
)

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatalf("write %s: %v", f.Name(), err)
	}
}

func readAll(t *testing.T, m *Mem, name string) string {
	t.Helper()
	b, err := m.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func TestMemCrashKeepsOnlySyncedData(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	f, err := m.Create("/d/a")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "hello")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, " world")

	// The file's entry was never made durable.
	if _, err := m.Crash().Stat("/d/a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unsynced create survived a crash: %v", err)
	}
	if err := m.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	c := m.Crash()
	if got := readAll(t, c, "/d/a"); got != "hello" {
		t.Fatalf("after crash: %q, want the synced %q", got, "hello")
	}
	if got := readAll(t, m, "/d/a"); got != "hello world" {
		t.Fatalf("original changed: %q", got)
	}
	// The clone is independent of the original.
	g, err := c.OpenRW("/d/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "!")
	if got := readAll(t, m, "/d/a"); got != "hello world" {
		t.Fatalf("clone write leaked into the original: %q", got)
	}
}

func TestMemUnsyncedDirectoryIsLost(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Crash().List("/a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory /a survived without SyncDir of /: %v", err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	names, err := m.Crash().List("/a")
	if err != nil || len(names) != 1 || names[0] != "b" {
		t.Fatalf("List /a after crash = %v, %v", names, err)
	}
}

func TestMemRenameAndRemoveNeedSyncDir(t *testing.T) {
	m := NewMem()
	if err := m.WriteFile("/old", []byte("old")); err != nil {
		t.Fatal(err)
	}
	f, err := m.Create("/new.tmp")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "new")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("/new.tmp", "/old"); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m, "/old"); got != "new" {
		t.Fatalf("after rename: %q", got)
	}
	if got := readAll(t, m.Crash(), "/old"); got != "old" {
		t.Fatalf("unsynced rename survived a crash: %q", got)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	c := m.Crash()
	if got := readAll(t, c, "/old"); got != "new" {
		t.Fatalf("synced rename lost: %q", got)
	}
	if _, err := c.Stat("/new.tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp name survived: %v", err)
	}

	if err := m.Remove("/old"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Crash().Stat("/old"); err != nil {
		t.Fatalf("unsynced remove took effect in the crash: %v", err)
	}
	// The handle still works after its name went away.
	mustWrite(t, f, "er")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMemTruncateAndRewriteDoNotTouchSyncedBytes(t *testing.T) {
	m := NewMem()
	if err := m.WriteFile("/f", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenRW("/f")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "xy")
	if got := readAll(t, m, "/f"); got != "0123\x00\x00xy" {
		t.Fatalf("current = %q", got)
	}
	if got := readAll(t, m.Crash(), "/f"); got != "0123456789" {
		t.Fatalf("synced bytes changed by unsynced writes: %q", got)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m.Crash(), "/f"); got != "0123\x00\x00xy" {
		t.Fatalf("after sync: %q", got)
	}
	buf := make([]byte, 4)
	if n, err := f.ReadAt(buf, 6); n != 2 || err != io.EOF {
		t.Fatalf("ReadAt past end = %d, %v", n, err)
	}
}

func TestMemFaults(t *testing.T) {
	m := NewMem()
	f, err := m.Create("/log")
	if err != nil {
		t.Fatal(err)
	}
	m.Inject(Fault{Op: OpSync, Path: "log", After: 1, Times: 1})
	if err := f.Sync(); err != nil {
		t.Fatalf("first sync should pass: %v", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second sync = %v, want EIO", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("third sync should pass (Times 1): %v", err)
	}

	m.Inject(Fault{Op: OpWrite, Err: syscall.ENOSPC, Prefix: 3})
	n, err := f.Write([]byte("abcdef"))
	if n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short write = %d, %v; want 3, ENOSPC", n, err)
	}
	if got := readAll(t, m, "/log"); got != "abc" {
		t.Fatalf("after short write: %q", got)
	}
	m.ClearFaults()
	mustWrite(t, f, "d")

	// A fault that matches another path does not fire.
	m.Inject(Fault{Op: OpCreate, Path: "other"})
	if _, err := m.Create("/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("/other"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("create /other = %v, want EIO", err)
	}
}

func TestMemOnOpBlocksAndCrashes(t *testing.T) {
	m := NewMem()
	if err := m.WriteFile("/f", nil); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenRW("/f")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	var crashed *Mem
	m.SetOnOp(func(op Op, path string) error {
		if op == OpSync {
			crashed = m.Crash()
			close(entered)
			<-release
			return errors.New("injected")
		}
		return nil
	})
	mustWrite(t, f, "data")
	done := make(chan error)
	go func() { done <- f.Sync() }()
	<-entered
	select {
	case err := <-done:
		t.Fatalf("Sync returned while held: %v", err)
	default:
	}
	close(release)
	if err := <-done; err == nil {
		t.Fatal("hook error not returned")
	}
	m.SetOnOp(nil)
	if got := readAll(t, crashed, "/f"); got != "" {
		t.Fatalf("crash before sync kept %q", got)
	}
	if m.Ops() == 0 {
		t.Fatal("no ops counted")
	}
}

func TestMemConcurrentWriters(t *testing.T) {
	m := NewMem()
	f, err := m.Create("/f")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if _, err := f.Write([]byte("x")); err != nil {
					t.Error(err)
				}
				if j%10 == 0 {
					if err := f.Sync(); err != nil {
						t.Error(err)
					}
					_ = m.Crash()
				}
			}
		}()
	}
	wg.Wait()
	if got := readAll(t, m, "/f"); !bytes.Equal([]byte(got), bytes.Repeat([]byte("x"), 800)) {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestMemWriteAt(t *testing.T) {
	m := NewMem()
	if err := m.WriteFile("/f", []byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenRW("/f")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.WriteAt([]byte("XY"), 2); n != 2 || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if n, err := f.WriteAt([]byte("Z"), 8); n != 1 || err != nil {
		t.Fatalf("WriteAt past the end = %d, %v", n, err)
	}
	// WriteAt does not move the offset Write uses.
	mustWrite(t, f, "0")
	if got := readAll(t, m, "/f"); got != "0bXYef\x00\x00Z" {
		t.Fatalf("current = %q", got)
	}
	if got := readAll(t, m.Crash(), "/f"); got != "abcdef" {
		t.Fatalf("synced = %q", got)
	}
	m.Inject(Fault{Op: OpWrite, Err: syscall.ENOSPC, Prefix: 1})
	if n, err := f.WriteAt([]byte("pq"), 0); n != 1 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short WriteAt = %d, %v", n, err)
	}
}
