//go:build race

package e2e

// raceEnabled builds the daemon with the race detector too when the tests
// run under it, so that a data race in the real process fails the test.
const raceEnabled = true
