package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

func runRestore(e *env, args []string) error {
	fs := newFlagSet(e, "restore", "FILE --data-dir DIR",
		"Offline: seed an empty data dir from a backup made by 'pstatectl backup'.\n"+
			"The backup is decoded whole first; then it becomes the dir's snapshot\n"+
			"and the log is based right after its seq, so a daemon started on DIR\n"+
			"serves the backed-up state. A non-empty DIR is refused.")
	dir := fs.String("data-dir", "", "the data dir to seed (must be empty or absent)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(fs, "want one backup file, got %d arguments", len(pos))
	}
	if *dir == "" {
		return usagef(fs, "--data-dir is required")
	}

	meta, n, err := restore(pos[0], *dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "restored seq %d (%s of snapshot) into %s\n",
		meta.Seq, fmtBytes(n), *dir)
	return err
}

// restore seeds dir from the backup at path. On failure it removes what it
// made, leaving dir as empty as it found it (or absent).
func restore(path, dir string) (meta checkpoint.Meta, n int64, err error) {
	existed, err := checkEmptyDir(dir)
	if err != nil {
		return meta, 0, err
	}

	// Decode the whole backup before touching dir.
	f, err := os.Open(path)
	if err != nil {
		return meta, 0, fmt.Errorf("open backup: %w", err)
	}
	meta, st, err := decodeBackup(f, path)
	f.Close()
	if err != nil {
		return meta, 0, err
	}

	unlock, err := datadir.Lock(dir)
	if err != nil {
		if !existed {
			os.RemoveAll(dir)
		}
		return meta, 0, err
	}
	defer func() {
		if err != nil {
			undoRestore(dir, existed)
		}
		if uerr := unlock(); err == nil && uerr != nil {
			err = fmt.Errorf("unlock %s: %w", dir, uerr)
		}
	}()

	snapDir := filepath.Join(dir, datadir.SnapshotDir)
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return meta, 0, fmt.Errorf("make snapshot dir: %w", err)
	}
	info, err := checkpoint.Write(vfs.OS, snapDir, meta, func(w io.Writer) error {
		return st.EncodeSnapshot(w)
	})
	if err != nil {
		return meta, 0, fmt.Errorf("write snapshot: %w", err)
	}
	if err := baseLog(filepath.Join(dir, datadir.WALDir), meta.Seq); err != nil {
		return meta, 0, err
	}
	if err := syncDir(dir); err != nil {
		return meta, 0, err
	}
	return meta, info.Bytes, nil
}

// baseLog creates the log in walDir, empty and based right after seq: its
// first record will get seq+1.
func baseLog(walDir string, seq uint64) error {
	l, err := wal.Open(walDir, wal.Options{Sync: wal.SyncAlways})
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	if err := l.TruncateBefore(seq + 1); err != nil {
		l.Close()
		return fmt.Errorf("base log after seq %d: %w", seq, err)
	}
	if next := l.NextSeq(); next != seq+1 {
		l.Close()
		return fmt.Errorf("base log after seq %d: next seq is %d", seq, next)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

// checkEmptyDir reports whether dir exists, and refuses one that holds
// anything, naming what it holds.
func checkEmptyDir(dir string) (existed bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read data dir: %w", err)
	}
	if len(entries) > 0 {
		names := make([]string, 0, 3)
		for i, en := range entries {
			if i == 3 {
				names = append(names, "...")
				break
			}
			names = append(names, en.Name())
		}
		return true, fmt.Errorf("refusing to restore into %s: the data dir is not empty "+
			"(holds %s); restore seeds an empty or absent dir only", dir,
			strings.Join(names, ", "))
	}
	return true, nil
}

// undoRestore removes what a failed restore made in dir, which was empty
// (or absent) before and was locked by the restore all along.
func undoRestore(dir string, existed bool) {
	if !existed {
		os.RemoveAll(dir)
		return
	}
	for _, name := range []string{datadir.SnapshotDir, datadir.WALDir, datadir.LockName} {
		os.RemoveAll(filepath.Join(dir, name))
	}
}
