// Package sdnotify speaks the systemd notify protocol: one unixgram
// datagram per message to the socket named by $NOTIFY_SOCKET. A leading '@'
// names a socket in the abstract namespace. Without $NOTIFY_SOCKET every call
// is a no-op, so the daemon runs the same outside systemd.
package sdnotify
