package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pstate/pstate/cmd/internal/datadir"
)

func runVerify(e *env, args []string) error {
	fs := newFlagSet(e, "verify", "--data-dir DIR",
		"Offline: check every snapshot and every log record of a data dir without\n"+
			"changing it. Exit 0 when sound, 1 listing the file, offset and kind of\n"+
			"each fault. A torn last record and leftover temporary files are reported\n"+
			"but are not faults: recovery handles them.\n\n"+
			"A dir locked by a running daemon is refused (its files change under the\n"+
			"check); --allow-running checks it anyway, and then a torn tail may be a\n"+
			"write in progress. While verify runs it holds a shared lock, so a daemon\n"+
			"started meanwhile refuses the dir.")
	dir := fs.String("data-dir", "", "the data dir to check")
	allowRunning := fs.Bool("allow-running", false, "check a dir a running daemon holds")
	asJSON := fs.Bool("json", false, "print the findings as NDJSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef(fs, "--data-dir is required")
	}
	if _, err := os.Stat(*dir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	release, err := probeLock(*dir)
	var le *datadir.LockedError
	switch {
	case errors.As(err, &le) && *allowRunning:
		fmt.Fprintf(e.stderr, "warning: %v; checking anyway, files may change meanwhile\n", le)
	case err != nil:
		return fmt.Errorf("%w (stop the daemon, or pass --allow-running)", err)
	default:
		defer release()
	}

	findings, err := datadir.Verify(*dir)
	if err != nil {
		return err
	}
	return reportFindings(e, *dir, findings, *asJSON)
}

// reportFindings prints the findings and fails when one is a fault.
func reportFindings(e *env, dir string, findings []datadir.Finding, asJSON bool) error {
	faults := 0
	for _, f := range findings {
		if f.Fault() {
			faults++
		}
		if asJSON {
			b, _ := json.Marshal(struct {
				datadir.Finding
				Fault bool `json:"fault"`
			}{f, f.Fault()})
			fmt.Fprintf(e.stdout, "%s\n", b)
			continue
		}
		label := "FAULT"
		if !f.Fault() {
			label = "note"
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", label, f)
	}
	if faults > 0 {
		return fmt.Errorf("%s: %d fault(s) found", dir, faults)
	}
	if !asJSON {
		fmt.Fprintf(e.stdout, "%s: sound\n", dir)
	}
	return nil
}

// probeLock takes a shared, non-blocking flock on DIR/LOCK without creating
// or writing anything. It returns a *datadir.LockedError when a daemon holds
// the lock. With no LOCK file no daemon has ever held the dir.
func probeLock(dir string) (release func(), err error) {
	path := filepath.Join(dir, datadir.LockName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &datadir.LockedError{Path: path, PID: lockPID(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// lockPID reads the pid the lock's holder wrote; 0 when unreadable.
func lockPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 0 {
		return 0
	}
	return pid
}
