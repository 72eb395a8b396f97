package faults

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBinaries()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// soak reports whether the long run was asked for (PSTATE_SOAK=1, as
// `make soak` sets it): more rounds.
func soak() bool { return os.Getenv("PSTATE_SOAK") != "" }

// pick returns short in the normal run and long under soak.
func pick(short, long int) int {
	if soak() {
		return long
	}
	return short
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}
