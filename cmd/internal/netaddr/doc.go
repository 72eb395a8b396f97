// Package netaddr parses the listen and dial addresses that pstated and
// pstatectl share: "unix:PATH" for a unix socket, "HOST:PORT" for TCP.
// Flags that take addresses are repeatable and comma-separated; Split
// flattens them.
package netaddr
