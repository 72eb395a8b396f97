package server

import (
	"net"
	"sync"
	"time"
)

// connQueue is a net.Listener whose connections are pushed to it: those
// the plain path hands to net/http.
type connQueue struct {
	mu     sync.Mutex
	conns  []net.Conn
	ready  chan struct{} // a token while conns is not empty
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ready: make(chan struct{}, 1), closed: make(chan struct{})}
}

// push queues c for Accept; after Close it closes c.
func (q *connQueue) push(c net.Conn) {
	q.mu.Lock()
	select {
	case <-q.closed:
		q.mu.Unlock()
		c.Close()
		return
	default:
	}
	q.conns = append(q.conns, c)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Accept returns the next connection pushed, or net.ErrClosed after Close.
func (q *connQueue) Accept() (net.Conn, error) {
	for {
		q.mu.Lock()
		if len(q.conns) > 0 {
			c := q.conns[0]
			q.conns[0] = nil
			q.conns = q.conns[1:]
			more := len(q.conns) > 0
			q.mu.Unlock()
			if more {
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return c, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.closed:
			return nil, net.ErrClosed
		}
	}
}

// Close makes Accept fail and closes the connections not yet accepted.
func (q *connQueue) Close() error {
	q.once.Do(func() {
		q.mu.Lock()
		close(q.closed)
		conns := q.conns
		q.conns = nil
		q.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return nil
}

// Addr is that of no network: the connections come from other listeners.
func (q *connQueue) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }

// prefixConn is a connection whose first bytes were already read: Read
// returns pre before reading c.
type prefixConn struct {
	net.Conn
	pre []byte
	// readBy, if set, bounds every read deadline: the body's deadline of
	// a request the plain path began to read, so that net/http does not
	// give it its ReadTimeout once more.
	readBy time.Time
}

func (c *prefixConn) SetReadDeadline(t time.Time) error {
	if !c.readBy.IsZero() && (t.IsZero() || t.After(c.readBy)) {
		t = c.readBy
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *prefixConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes a TCP connection, as net/http does before it
// closes one after an error.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
