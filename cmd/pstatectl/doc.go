// Command pstatectl is the client of pstated and the offline tools for its
// data dir.
//
// The online commands (status, jobs, job, workspaces, submit, checkpoint,
// backup, load, ready) talk HTTP to the daemon over a unix socket or TCP,
// chosen by --addr (unix:PATH or HOST:PORT; default the daemon's default
// socket ./data/pstated.sock, or $PSTATE_ADDR). With --token-file every
// request carries the file's content as a bearer token.
//
// The offline commands (restore, verify, wal dump) work on a data dir
// directly and never talk to a daemon. verify and wal dump never change the
// dir; restore only seeds an empty one.
//
// Exit status: 0 on success, 1 on a failure (the message names what failed;
// an HTTP error shows the server's code and message), 2 on bad usage.
package main
