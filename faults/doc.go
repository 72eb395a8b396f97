// Package faults holds the tests that try to break pstate's promises from
// the outside: kill -9 loops against the real binaries under load, slow
// clients, unauthenticated and wrong-token requests on TCP loopback, and
// hostile event bodies for the decoder. The in-process half (the crash
// matrix on vfs.Mem, the corruption matrix, injected fsync and disk-full
// failures, the HTTP handler fuzz target) is in cmd/internal/faults, next to
// the packages it drives. It has no code outside its tests;
// docs/RELIABILITY.md says what was tried and with what result.
//
// The normal run keeps the loops short; PSTATE_SOAK=1 (`make soak`) runs
// many more rounds.
package faults
