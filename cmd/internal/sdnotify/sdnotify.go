package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages the daemon sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends messages to one notify socket. The zero value (and a nil
// *Notifier) discards every message.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET; it discards messages when
// the variable is unset.
func FromEnv() *Notifier {
	return New(os.Getenv("NOTIFY_SOCKET"))
}

// New returns a Notifier for the socket path; "" discards messages. A path
// starting with '@' is in the abstract namespace.
func New(socket string) *Notifier {
	if socket == "" {
		return &Notifier{}
	}
	name := socket
	if name[0] == '@' {
		// Go spells the abstract namespace with a leading NUL byte.
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether messages go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends one datagram holding the newline-separated assignments, for
// example Notify(Ready, "STATUS=serving").
func (n *Notifier) Notify(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	var msg []byte
	for i, a := range assignments {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, a...)
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: dial %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("sdnotify: send: %w", err)
	}
	return nil
}

// Status formats a STATUS= assignment.
func Status(s string) string { return "STATUS=" + s }

// ExtendTimeout formats an EXTEND_TIMEOUT_USEC= assignment: it asks the
// service manager for d more time to start or stop.
func ExtendTimeout(d time.Duration) string {
	return "EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10)
}

// WatchdogInterval returns how often to send Watchdog: half of
// $WATCHDOG_USEC. It returns 0 when the watchdog is off or meant for another
// process ($WATCHDOG_PID set and not ours).
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		if pid, err := strconv.Atoi(p); err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(usec) * time.Microsecond / 2
}
