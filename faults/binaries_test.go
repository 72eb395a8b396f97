package faults

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pstate/pstate/internal/daemontest"
)

// The real binaries, built once per test binary on first use.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

// binary returns the path of cmd/<name> built for this run.
func binary(t *testing.T, name string) string {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "pstate-faults-bin")
		if bins.err != nil {
			return
		}
		bins.err = daemontest.Build(bins.dir, false, "pstated", "pstatectl")
	})
	if bins.err != nil {
		t.Fatalf("build binaries: %v", bins.err)
	}
	return filepath.Join(bins.dir, name)
}

func removeBinaries() {
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
}
