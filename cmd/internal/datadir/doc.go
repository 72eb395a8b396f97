// Package datadir knows the layout of a pstated data directory and how to
// open one: the exclusive lock, recovery (newest sound snapshot plus the log
// after it) and the offline check behind `pstatectl verify`.
//
// Layout of --data-dir:
//
//	DIR/
//	  LOCK            flock(2) held by the running daemon; holds its pid
//	  pstated.sock    the default unix socket (mode 0600)
//	  wal/            the write-ahead log (package wal)
//	  snapshots/      snapshot files only: snap-<seq, 20 digits>.pst
//
// Files being written end in ".tmp"; recovery removes the ones a crash left.
//
// The lock is advisory and tied to the open file description: it is released
// by the kernel when the process dies, however it dies, so a stale LOCK file
// never blocks a restart. The pid in it is informative only.
package datadir
