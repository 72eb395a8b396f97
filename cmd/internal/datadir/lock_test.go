package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, LockName))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q; want our pid", got)
	}

	// flock locks belong to the open file description, so a second Lock in
	// the same process conflicts just as another process would.
	_, err = Lock(dir)
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("second Lock: %v; want *LockedError", err)
	}
	if le.PID != os.Getpid() || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second Lock: %v; want the holder's pid %d", err, os.Getpid())
	}

	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock2, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	if err := unlock2(); err != nil {
		t.Fatal(err)
	}
}
