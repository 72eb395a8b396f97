package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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
		for _, cmd := range []string{"pstated", "pstatectl"} {
			b := exec.Command("go", "build", "-o", filepath.Join(bins.dir, cmd),
				"github.com/pstate/pstate/cmd/"+cmd)
			if out, err := b.CombinedOutput(); err != nil {
				bins.err = &buildError{cmd: cmd, out: string(out), err: err}
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatalf("build binaries: %v", bins.err)
	}
	return filepath.Join(bins.dir, name)
}

type buildError struct {
	cmd, out string
	err      error
}

func (e *buildError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + e.out }

func removeBinaries() {
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
}
