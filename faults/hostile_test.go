package faults

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile clients against the real binary on TCP loopback: slow clients
// that never finish their headers, and requests without the token or with
// a wrong one. The daemon must cut the first, answer the second with 401,
// and keep serving everyone else.

// cutBound is how long a slow connection may live before the test calls
// the server's timeouts broken. The server's ReadHeaderTimeout is 5s; this
// is a guard against a hang, not a measurement.
const cutBound = 60 * time.Second

// slowClient opens a connection and sends a request's headers one byte at
// a time, never ending them. It returns once the server closed the
// connection, with how many bytes it managed to send, or an error if the
// server did not cut it within cutBound.
func slowClient(addr string, pace time.Duration) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	closed := make(chan struct{})
	go func() {
		// The server's answer, if any (a 408), then EOF when it closes.
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	head := "GET /v1/status HTTP/1.1\r\nHost: pstated\r\n"
	sent := 0
	deadline := time.After(cutBound)
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return sent, nil
		case <-deadline:
			return sent, errors.New("the server never cut a connection whose headers never end")
		case <-tick.C:
		}
		var b byte
		if i < len(head) {
			b = head[i]
		} else {
			b = "X-Slow: 1\r\n"[(i-len(head))%11]
		}
		if _, err := conn.Write([]byte{b}); err != nil {
			<-closed
			return sent, nil
		}
		sent++
	}
}

func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("slow clients: not in -short")
	}
	d := startDaemon(t, t.TempDir(), "--listen", "127.0.0.1:0")
	addr := d.tcpAddr()
	slow := pick(20, 200)

	var wg sync.WaitGroup
	errc := make(chan error, slow)
	started := make(chan struct{}, slow)
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			if n, err := slowClient(addr, 50*time.Millisecond); err != nil {
				errc <- fmt.Errorf("after %d bytes: %w", n, err)
			}
		}()
	}
	for range slow {
		<-started
	}

	// While they trickle, other clients are served.
	c := &http.Client{}
	defer c.CloseIdleConnections()
	served := 0
	for i := range 50 {
		body := fmt.Sprintf(`{"type":"job.submitted","id":"fast%d","job_id":"fast%d",`+
			`"name":"n","steps":["a"]}`, i, i)
		if code, b := call(t, c, "POST", "http://"+addr+"/v1/events", "",
			[]byte(body)); code != 200 {
			t.Fatalf("write while slow clients trickle: %d %s", code, b)
		}
		if code, b := call(t, c, "GET", "http://"+addr+"/v1/jobs/fast"+fmt.Sprint(i), "",
			nil); code != 200 {
			t.Fatalf("read while slow clients trickle: %d %s", code, b)
		}
		served += 2
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if code, b := call(t, c, "GET", "http://"+addr+"/healthz", "", nil); code != 200 {
		t.Fatalf("healthz after the slow clients: %d %s", code, b)
	}
	t.Logf("SUMMARY slow clients: %d connections sending headers a byte at a time, all "+
		"cut by the server; %d other requests served meanwhile", slow, served)
}

func TestAuthOnTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("auth: not in -short")
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "s3cret-token-for-the-test"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, t.TempDir(), "--listen", "127.0.0.1:0", "--auth-token-file",
		tokenFile)
	base := "http://" + d.tcpAddr()
	c := &http.Client{}
	defer c.CloseIdleConnections()

	event := []byte(`{"type":"job.submitted","id":"sneak","job_id":"sneak","name":"n",` +
		`"steps":["a"]}`)
	bad := []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + token + "x",
		"Bearer " + token[:len(token)-1], "Basic " + token, token, "Bearer  " + token + " x",
		"Bearer " + strings.Repeat("A", 8000), "Token " + token}
	paths := []struct{ method, path string }{{"GET", "/v1/status"}, {"GET", "/v1/jobs"},
		{"GET", "/v1/jobs/sneak"}, {"GET", "/v1/workspaces"}, {"GET", "/v1/snapshot"},
		{"POST", "/v1/checkpoint"}, {"POST", "/v1/events"}, {"GET", "/nowhere"}}
	tried := 0
	for _, auth := range bad {
		for _, p := range paths {
			var body []byte
			if p.method == "POST" {
				body = event
			}
			code, b := call(t, c, p.method, base+p.path, auth, body)
			tried++
			if code != http.StatusUnauthorized || !strings.HasPrefix(errorCode(b), "unauthorized") {
				t.Errorf("%s %s with %.30q: %d %s", p.method, p.path, auth, code, b)
			}
		}
	}
	// The probes need no token; the refused write was not applied.
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, b := call(t, c, "GET", base+p, "", nil); code != 200 {
			t.Errorf("%s without a token: %d %s", p, code, b)
		}
	}
	if code, b := call(t, c, "GET", base+"/v1/jobs/sneak", "Bearer "+token, nil); code != 404 {
		t.Fatalf("a write refused for its token was applied: %d %s", code, b)
	}
	if code, b := call(t, c, "POST", base+"/v1/events", "Bearer "+token, event); code != 200 {
		t.Fatalf("write with the token: %d %s", code, b)
	}

	// Raw garbage on the port gets a 4xx (505 for an HTTP version net/http
	// does not speak) or a closed connection, and the daemon goes on.
	for _, raw := range []string{"\x00\x01\x02\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
		"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		strings.Repeat("A", 70<<10) + "\r\n\r\n"} {
		if status := rawRequest(t, strings.TrimPrefix(base, "http://"), raw); status != "" &&
			!strings.Contains(status, " 4") && !strings.Contains(status, " 505 ") {
			t.Errorf("raw %.20q: %s", raw, status)
		}
		tried++
	}
	if code, _ := call(t, c, "GET", base+"/v1/status", "Bearer "+token, nil); code != 200 {
		t.Fatal("the daemon stopped serving after hostile requests")
	}
	t.Logf("SUMMARY auth: %d unauthenticated, wrong-token and raw garbage requests on TCP "+
		"loopback, each 401/4xx; the daemon kept serving", tried)
}

// rawRequest writes raw bytes to addr and returns the status line of the
// answer ("" when the server closed the connection without one).
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(cutBound))
	if _, err := conn.Write([]byte(raw)); err != nil {
		return ""
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}
