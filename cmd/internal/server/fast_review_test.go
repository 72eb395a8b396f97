package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// heldServer is an open Server whose next fsync of the log blocks until
// release is closed; held is closed when it starts to.
func heldServer(t *testing.T) (s *Server, held, release chan struct{}) {
	t.Helper()
	fs := vfs.NewMem()
	s = New(Config{DataDir: "/data", FS: fs, Sync: wal.SyncAlways,
		Registerer: prometheus.NewRegistry(), Version: "test"})
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	held, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.SetOnOp(func(op vfs.Op, p string) error {
		if op == vfs.OpSync && strings.Contains(p, "wal") {
			once.Do(func() {
				close(held)
				<-release
			})
		}
		return nil
	})
	return s, held, release
}

// answerDuringShutdown sends a POST /v1/events whose fsync is held, starts
// the shutdown (start returns once it began), releases the fsync and
// returns the answer.
func answerDuringShutdown(t *testing.T, addr string, held, release chan struct{},
	start func()) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, post(submitJob("a"))); err != nil {
		t.Fatal(err)
	}
	<-held
	start()
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	resp.Body.Close()
	return resp
}

// TestPlainAnswerDuringShutdownSaysClose: an answer written after Shutdown
// began is the connection's last, and says so with Connection: close, as
// net/http's answers do then.
func TestPlainAnswerDuringShutdownSaysClose(t *testing.T) {
	run := func(t *testing.T, plain bool) *http.Response {
		s, held, release := heldServer(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		shut := make(chan error, 1)
		var start func()
		if plain {
			api := s.APIServer(false)
			go func() { served <- api.Serve(l) }()
			start = func() {
				api.stop() // Shutdown's first step; it is idempotent
				go func() { shut <- api.Shutdown(context.Background()) }()
			}
		} else {
			hs := s.HTTPServer(false)
			began := make(chan struct{})
			hs.RegisterOnShutdown(func() { close(began) })
			go func() { served <- hs.Serve(l) }()
			start = func() {
				go func() { shut <- hs.Shutdown(context.Background()) }()
				<-began
			}
		}
		resp := answerDuringShutdown(t, l.Addr().String(), held, release, start)
		if err := <-shut; err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
		return resp
	}
	ref := run(t, false)
	if ref.StatusCode != http.StatusOK || !ref.Close {
		t.Fatalf("net/http during shutdown: %d close=%v", ref.StatusCode, ref.Close)
	}
	got := run(t, true)
	if got.StatusCode != ref.StatusCode || got.Close != ref.Close {
		t.Fatalf("plain path during shutdown: %d close=%v (header %v); net/http: %d close=%v",
			got.StatusCode, got.Close, got.Header, ref.StatusCode, ref.Close)
	}
}

// deadlineConn records the read deadlines set on it and makes each one
// come 1000 times sooner in real time, so that a 30 s body timeout takes
// 30 ms.
type deadlineConn struct {
	net.Conn
	mu        sync.Mutex
	deadlines []time.Time // as asked for
	timedOut  int         // len(deadlines) when a read first timed out
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	if !t.IsZero() {
		t = time.Now().Add(time.Until(t) / 1000)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.mu.Lock()
		if c.timedOut == 0 {
			c.timedOut = len(c.deadlines)
		}
		c.mu.Unlock()
	}
	return n, err
}

type deadlineListener struct {
	net.Listener
	conns chan *deadlineConn
}

func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: c}
	l.conns <- dc
	return dc, nil
}

// TestPlainBodyTimeoutIsNotRenewed: a body that does not arrive within
// ReadTimeout is answered 400 and the connection ends; net/http, which
// answers it after the plain path gave up on it, must not give it another
// ReadTimeout. No read deadline set after the first read that timed out
// may lie past the one that ran out.
func TestPlainBodyTimeoutIsNotRenewed(t *testing.T) {
	s := New(Config{DataDir: "/data", FS: vfs.NewMem(), Sync: wal.SyncAlways,
		Registerer: prometheus.NewRegistry(), Version: "test"})
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	api := s.APIServer(false)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &deadlineListener{Listener: tl, conns: make(chan *deadlineConn, 1)}
	served := make(chan error, 1)
	go func() { served <- api.Serve(l) }()
	defer func() {
		if err := api.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	}()

	c, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "POST /v1/events HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n{"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	dc := <-l.conns
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.timedOut == 0 {
		t.Fatalf("no read timed out; deadlines %v", dc.deadlines)
	}
	ran := dc.deadlines[dc.timedOut-1]
	for _, d := range dc.deadlines[dc.timedOut:] {
		if d.IsZero() || d.After(ran) {
			t.Fatalf("after the body's deadline %v ran out, the connection got %v",
				ran.Format(time.StampMilli), d.Format(time.StampMilli))
		}
	}
}
