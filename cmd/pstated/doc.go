// Command pstated is the pstate daemon: it keeps the live state of a job
// system durable and readable, serving the HTTP API on unix sockets and TCP
// and Prometheus metrics on a listener of their own.
//
// Exit status: 0 after a clean stop (SIGTERM or SIGINT), 1 when it cannot
// start or must stop, 2 on bad usage. See the project's contract for the
// flags (each also from its PSTATED_ variable) and the API.
package main
