package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/pstate/pstate/internal/daemontest"
)

// daemon is one pstated process under test.
type daemon struct{ *daemontest.Daemon }

// startDaemon starts pstated on dataDir (the API on a unix socket unless
// args give listeners) and waits for READY=1.
func startDaemon(t *testing.T, dataDir string, args ...string) *daemon {
	t.Helper()
	return &daemon{daemontest.Start(t, binary(t, "pstated"), dataDir, nil, args...)}
}

// tcpAddr returns the TCP address the API listens on.
func (d *daemon) tcpAddr() string { return d.Addr("api", "tcp") }

// call sends one request and returns the status and body.
func call(t *testing.T, c *http.Client, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// unixURL is the base of URLs sent over the unix socket.
const unixURL = "http://pstated"

func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return fmt.Sprintf("%s: %s", e.Error.Code, e.Error.Message)
}
