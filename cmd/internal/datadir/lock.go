package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Names inside a data directory.
const (
	WALDir      = "wal"
	SnapshotDir = "snapshots"
	LockName    = "LOCK"
	SocketName  = "pstated.sock"
)

// LockedError reports that another process holds a data directory's lock.
type LockedError struct {
	Path string // the lock file
	PID  int    // the holder's pid as written in the lock file; 0 if unknown
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data dir in use: %s is locked by pid %d", e.Path, e.PID)
	}
	return fmt.Sprintf("data dir in use: %s is locked by another process", e.Path)
}

// Lock takes an exclusive, non-blocking flock on DIR/LOCK (making DIR when
// missing) and writes the caller's pid into the file. When another process
// holds the lock it returns a *LockedError naming that process's pid. The
// returned unlock releases the lock; the file itself stays, so that a second
// process never races with its removal.
func Lock(dir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make data dir: %w", err)
	}
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := flock(f); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, PID: readPID(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}

	// Only the holder writes the pid, so a reader that lost the race above
	// reads the holder's pid (or, for an instant, an empty file).
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write pid to %s: %w", path, err)
	}
	return func() error {
		uerr := unix.Flock(int(f.Fd()), unix.LOCK_UN)
		if cerr := f.Close(); uerr == nil {
			uerr = cerr
		}
		return uerr
	}, nil
}

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}

// readPID reads the pid written by the lock's holder; 0 when unreadable.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
