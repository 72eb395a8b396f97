package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn := listen(t, path)
	n := New(path)
	if err := n.Notify(Ready, Status("serving")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, conn); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("got %q", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "pstate-sdnotify-test-" + strconv.Itoa(os.Getpid())
	conn := listen(t, "\x00"+name)
	if err := New("@" + name).Notify(Watchdog); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, conn); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
}

func TestDisabled(t *testing.T) {
	var nilN *Notifier
	for _, n := range []*Notifier{New(""), nilN, {}} {
		if n.Enabled() {
			t.Fatal("enabled without a socket")
		}
		if err := n.Notify(Ready); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
	if d := WatchdogInterval(); d != 0 {
		t.Fatalf("no watchdog: %v", d)
	}
	t.Setenv("WATCHDOG_USEC", "10000000")
	if d := WatchdogInterval(); d != 5*time.Second {
		t.Fatalf("interval %v; want 5s", d)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d := WatchdogInterval(); d != 0 {
		t.Fatalf("another pid's watchdog: %v", d)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d := WatchdogInterval(); d != 5*time.Second {
		t.Fatalf("our pid: %v", d)
	}
	if got := ExtendTimeout(2 * time.Second); got != "EXTEND_TIMEOUT_USEC=2000000" {
		t.Fatal(got)
	}
}
