// Package server is the daemon pstated minus its command line: it recovers
// a data directory, runs the event engine and the checkpointer, and serves
// the HTTP API and the metrics. cmd/pstated parses flags, takes the data
// dir's lock, opens the listeners and hands them here; tests build a Server
// in-process on an in-memory filesystem.
//
// Lifecycle: New builds the handlers, which answer /healthz and /readyz at
// once (every other endpoint is 503 "recovering"); Open recovers and starts
// the engine; Close stops intake, finishes in-flight writes, takes a final
// checkpoint and closes the log.
//
// Authentication: when a token is configured, the handler returned by
// Handler(true) requires "Authorization: Bearer TOKEN" on every endpoint but
// the probes. The daemon uses it for TCP listeners; a unix socket is
// protected by its mode (0600) and gets Handler(false). The plain path
// answers only a request with the right token; net/http answers the 401.
//
// Serving: the daemon serves each API listener with an APIServer. Its
// connections answer POST /v1/events in the plain form every client sends
// (a fixed request line, a short list of known headers, a Content-Length)
// on a lean path of their own (fast.go), and hand the connection to
// net/http, which serves everything else, at the first request of any
// other form. Both paths share the handler's code for the answer.
//
// Read-only: once the log fails (a failed fsync, a full disk) it refuses
// every later write; the server then answers writes and /readyz with 503 and
// the log's error as the reason, and keeps serving reads from the last
// published root. Only a restart clears it.
package server
