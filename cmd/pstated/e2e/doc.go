// Package e2e holds the end-to-end tests of pstated: they build the real
// binary once (TestMain), start it on unix sockets and loopback ports in
// temporary directories, and talk to it over HTTP as a client would. The
// daemon's readiness is read from a NOTIFY_SOCKET datagram socket the tests
// create, as systemd would, and its TCP ports from its "listening" log
// lines, so no test waits by polling or sleeping.
package e2e
