package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pstate/pstate/internal/daemontest"
)

// nextNotify reads notify datagrams until one holds want.
func (d *daemon) nextNotify(want string) {
	d.t.Helper()
	buf := make([]byte, 4096)
	_ = d.Notify.SetReadDeadline(time.Now().Add(daemontest.StartBound))
	for {
		n, err := d.Notify.Read(buf)
		if err != nil {
			d.t.Fatalf("no %s from pstated: %v\n%s", want, err, d.Log())
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == want {
				return
			}
		}
	}
}

// TestSystemdNotify: READY=1 once recovered, WATCHDOG=1 pings at half of
// WATCHDOG_USEC while the loop answers, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	d := start(t, t.TempDir(), []string{"WATCHDOG_USEC=200000"})
	d.nextNotify("WATCHDOG=1")
	d.nextNotify("WATCHDOG=1")
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.nextNotify("STOPPING=1")
	if code := d.Wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
