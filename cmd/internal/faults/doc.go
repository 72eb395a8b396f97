// Package faults holds the in-process half of the tests that try to break
// pstate's promises: the crash matrix on the strict in-memory filesystem
// (vfs.Mem) recovered with datadir.Recover, the corruption matrix on real
// data directories checked against recovery and datadir.Verify, injected
// fsync and disk-full failures in the daemon's core (server.New on a
// vfs.Mem) and a fuzz target on its HTTP handler. They live under cmd/
// because they drive cmd/internal/datadir and cmd/internal/server, which
// Go lets nothing else import. The tests against the real binaries (kill -9
// loops, slow clients, authentication) are in the top-level faults package.
//
// The normal run samples the crash points and keeps the loops short.
// PSTATE_SOAK=1 (`make soak`) crashes at every point and runs more seeds.
// docs/RELIABILITY.md says what was tried and with what result.
package faults
