package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/internal/daemontest"
)

// pstatedBin is the daemon built for the tests; binDir holds it.
var pstatedBin, binDir string

var (
	ctlOnce sync.Once
	ctlBin  string
	ctlErr  error
)

// pstatectl builds the client on first use, so that a test that does not
// need it never depends on it.
func pstatectl(t *testing.T) string {
	t.Helper()
	ctlOnce.Do(func() {
		ctlBin = filepath.Join(binDir, "pstatectl")
		ctlErr = daemontest.Build(binDir, false, "pstatectl")
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlBin
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pstate-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	pstatedBin = filepath.Join(dir, "pstated")
	if err := daemontest.Build(dir, raceEnabled, "pstated"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}
