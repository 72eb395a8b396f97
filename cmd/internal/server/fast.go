package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// An APIServer serves the HTTP API on listeners. Each connection is read
// by a goroutine of its own that answers POST /v1/events itself when the
// request has the plain form every client of the daemon sends (see
// parsePlainHead), and hands the connection, with the bytes of that
// request, to an http.Server at the first request of any other form. From
// then on net/http serves it: reads, errors, probes, odd or hostile
// requests all take the one path that has always served them. The plain
// path costs about a third of net/http's work a request, which is most of
// the daemon's work for single events.
//
// Both paths answer a POST /v1/events with the same status and body
// (Server.submitEvents), count it in the same metric and log it the same
// way.
type APIServer struct {
	s       *Server
	hs      *http.Server
	token   *[sha256.Size]byte // hash of the required token, or nil
	handoff *connQueue         // what hs serves

	ctx    context.Context // the requests' context; cancelled by Close
	cancel context.CancelFunc

	handed atomic.Int64 // connections handed to net/http

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*plainConn]struct{}
	// closing is set under mu once Shutdown or Close begins; stopping
	// reads it without the lock on every request.
	closing atomic.Bool
	idle    *sync.Cond // signalled as conns end
}

// Limits of the plain path; a request beyond them goes to net/http.
const (
	plainHeadMax    = 4 << 10 // bytes of the request line and headers
	plainHeaderMax  = 24      // header lines
	plainIdleSlack  = 20 * time.Second
	plainWriteAhead = 30 * time.Second // write deadline, renewed lazily
)

// APIServer returns an APIServer for the API with the daemon's timeouts.
// With requireToken (and a configured token) every endpoint but /healthz
// and /readyz needs the bearer token.
func (s *Server) APIServer(requireToken bool) *APIServer {
	a := &APIServer{
		s:         s,
		hs:        s.HTTPServer(requireToken),
		handoff:   newConnQueue(),
		listeners: map[net.Listener]struct{}{},
		conns:     map[*plainConn]struct{}{},
	}
	a.idle = sync.NewCond(&a.mu)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if requireToken && s.cfg.Token != nil {
		h := sha256.Sum256(s.cfg.Token)
		a.token = &h
	}
	go func() { _ = a.hs.Serve(a.handoff) }()
	return a
}

// Serve accepts connections on l until Shutdown or Close, and returns
// http.ErrServerClosed then, or the error that stopped the accepting.
func (a *APIServer) Serve(l net.Listener) error {
	a.mu.Lock()
	if a.closing.Load() {
		a.mu.Unlock()
		l.Close()
		return http.ErrServerClosed
	}
	a.listeners[l] = struct{}{}
	a.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if a.closing.Load() {
				return http.ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of descriptors (EMFILE) and the like: back off and
				// retry, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		pc := &plainConn{a: a, c: c}
		a.mu.Lock()
		if a.closing.Load() {
			a.mu.Unlock()
			c.Close()
			continue
		}
		a.conns[pc] = struct{}{}
		a.mu.Unlock()
		go pc.serve()
	}
}

// Shutdown stops accepting, closes the connections waiting for a request,
// lets the requests in flight finish, and then shuts the net/http side
// down the same way, all within ctx.
func (a *APIServer) Shutdown(ctx context.Context) error {
	a.stop()
	done := make(chan struct{})
	go func() {
		a.mu.Lock()
		for len(a.conns) > 0 {
			a.idle.Wait()
		}
		a.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		a.closeConns()
		return ctx.Err()
	}
	return a.hs.Shutdown(ctx)
}

// Close closes the listeners and every connection at once.
func (a *APIServer) Close() error {
	a.stop()
	a.cancel()
	a.closeConns()
	return a.hs.Close()
}

// stop stops the accepting and wakes the connections waiting for a
// request, which then end.
func (a *APIServer) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing.Load() {
		return
	}
	a.closing.Store(true)
	for l := range a.listeners {
		l.Close()
	}
	for pc := range a.conns {
		// A reader waiting for a request fails at once; one in the
		// middle of a request ends after its answer.
		_ = pc.c.SetReadDeadline(time.Unix(1, 0))
	}
}

func (a *APIServer) closeConns() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for pc := range a.conns {
		pc.c.Close()
	}
}

// stopping reports whether Shutdown or Close began.
func (a *APIServer) stopping() bool { return a.closing.Load() }

// forget drops pc from the connections served here.
func (a *APIServer) forget(pc *plainConn) {
	a.mu.Lock()
	delete(a.conns, pc)
	a.idle.Broadcast()
	a.mu.Unlock()
}

// plainConn is one connection served on the plain path.
type plainConn struct {
	a   *APIServer
	c   net.Conn
	buf []byte // bytes read and not yet answered; buf[0] starts a request
	out []byte // the answer being written

	readBy, writeBy time.Time // deadlines set on c
}

// serve answers plain requests until the connection ends or a request of
// another form hands it to net/http.
func (pc *plainConn) serve() {
	a := pc.a
	handed := false
	defer func() {
		if !handed {
			pc.c.Close()
		}
		a.forget(pc)
	}()
	pc.buf = make([]byte, 0, 4<<10)
	for {
		h, ok := pc.readHead()
		if !ok {
			return
		}
		ok = h.plain && a.authorized(h)
		var readBy time.Time
		if ok && !pc.readBody(h) {
			// net/http answers a body whose time ran out, or whose
			// connection failed, within the time that was left for it.
			ok, readBy = false, pc.readBy
		}
		if !ok || !a.ready() {
			handed = a.handOver(pc, readBy)
			return
		}
		if !pc.answer(h) || a.stopping() {
			return
		}
		pc.buf = pc.buf[:copy(pc.buf, pc.buf[h.headLen+h.bodyLen:])]
		if cap(pc.buf) > maxIdleBuf && len(pc.buf) <= 4<<10 {
			// An idle connection keeps a small buffer, as net/http's do.
			pc.buf = append(make([]byte, 0, 4<<10), pc.buf...)
		}
	}
}

// maxIdleBuf is the largest read buffer a connection keeps between
// requests (a batch of 100 events takes about 20 KiB); maxIdleOut that of
// its answer buffer.
const (
	maxIdleBuf = 64 << 10
	maxIdleOut = 16 << 10
)

// handOver gives pc's connection, with the bytes read of its request, to
// net/http, unless Shutdown began. It reports whether it did. Under a.mu,
// so that stop never sets its deadline on a connection net/http serves.
func (a *APIServer) handOver(pc *plainConn, readBy time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing.Load() {
		return false
	}
	delete(a.conns, pc)
	a.idle.Broadcast()
	a.handed.Add(1)
	a.handoff.push(&prefixConn{Conn: pc.c, pre: pc.buf, readBy: readBy})
	return true
}

// readHead reads until buf holds a whole request head, or bytes that no
// plain head starts with. It returns false when the connection ended (or
// timed out) before a request began or in the middle of its head: as
// net/http does, such a connection is closed without an answer.
func (pc *plainConn) readHead() (plainHead, bool) {
	for {
		if h, done := parsePlainHead(pc.buf); done {
			return h, true
		}
		if len(pc.buf) == 0 {
			// Waiting for a request: the idle timeout, renewed lazily.
			if time.Until(pc.readBy) < IdleTimeout-plainIdleSlack {
				pc.setReadBy(time.Now().Add(IdleTimeout))
				if pc.a.stopping() { // stop may have set its deadline first
					return plainHead{}, false
				}
			}
		} else if time.Until(pc.readBy) > ReadHeaderTimeout {
			pc.setReadBy(time.Now().Add(ReadHeaderTimeout))
		}
		if !pc.fill(plainHeadMax) {
			return plainHead{}, false
		}
	}
}

// readBody reads the body h declares; false when the connection failed
// (pc.buf then holds what arrived, which net/http answers or drops).
func (pc *plainConn) readBody(h plainHead) bool {
	want := h.headLen + h.bodyLen
	if len(pc.buf) < want {
		pc.setReadBy(time.Now().Add(ReadTimeout))
	}
	for len(pc.buf) < want {
		if !pc.fill(want) {
			return false
		}
	}
	return true
}

// fill reads once into buf, growing it by at most 64 KiB ahead of the
// bytes (and never past limit); false on an error or a full buffer.
func (pc *plainConn) fill(limit int) bool {
	if len(pc.buf) >= limit {
		return false
	}
	if len(pc.buf) == cap(pc.buf) {
		pc.buf = slices.Grow(pc.buf, min(limit-len(pc.buf), preGrowBody))
	}
	n, err := pc.c.Read(pc.buf[len(pc.buf):min(cap(pc.buf), limit)])
	pc.buf = pc.buf[:len(pc.buf)+n]
	return err == nil || n > 0
}

func (pc *plainConn) setReadBy(t time.Time) {
	pc.readBy = t
	_ = pc.c.SetReadDeadline(t)
}

// answer submits h's events and writes the answer. It reports whether the
// connection serves another request: not when the write failed, the request
// asked to close, or Shutdown began meanwhile (the answer then says
// Connection: close, as net/http's answers do once it shuts down).
func (pc *plainConn) answer(h plainHead) bool {
	a, s := pc.a, pc.a.s
	start := time.Now()
	rt := s.rt.Load()
	body := pc.buf[h.headLen : h.headLen+h.bodyLen]
	bp := bodyPool.Get().(*[]byte)
	status, answer := s.submitEvents(a.ctx, rt, body, (*bp)[:0])
	last := h.close || a.stopping()
	out := appendAnswerHead(pc.out[:0], status, len(answer), last)
	out = append(out, answer...)
	if cap(answer) <= maxPooledBody {
		*bp = answer[:0]
		bodyPool.Put(bp)
	}
	if cap(out) <= maxIdleOut {
		pc.out = out
	}
	if time.Until(pc.writeBy) < plainWriteAhead/2 {
		pc.writeBy = start.Add(plainWriteAhead)
		_ = pc.c.SetWriteDeadline(pc.writeBy)
	}
	_, err := pc.c.Write(out)
	s.m.requests.WithLabelValues(eventsRoute, strconv.Itoa(status)).Inc()
	if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
		ce.Write(zap.String(keyMethod, http.MethodPost), zap.String(keyPath, eventsPath),
			zap.Int(keyStatus, status), zap.Duration(keyDuration, time.Since(start)),
			zap.String(keyRemote, pc.c.RemoteAddr().String()))
	}
	return err == nil && !last
}

// authorized reports whether h may be answered here: no token is needed,
// or it carries the right one. A request without it goes to net/http,
// which answers 401.
func (a *APIServer) authorized(h plainHead) bool {
	if a.token == nil {
		return true
	}
	tok, ok := bearerToken(string(h.auth))
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1 && ok
}

// ready reports whether events are taken now; the 503s of every other
// phase are net/http's to answer.
func (a *APIServer) ready() bool {
	s := a.s
	return s.phase.Load() == phaseReady && s.rt.Load() != nil && s.readOnlyReason() == ""
}

const (
	eventsPath  = "/v1/events"
	eventsRoute = "POST " + eventsPath
	plainLine   = "POST " + eventsPath + " HTTP/1.1\r\n"
)

// plainHead is what the plain path keeps of a request head.
type plainHead struct {
	plain   bool // false: the bytes are not a plain request; hand them over
	headLen int  // bytes of the request line and headers, the blank line too
	bodyLen int  // Content-Length
	close   bool // Connection: close
	auth    []byte
}

// parsePlainHead reads a request head from the start of b. done is false
// while b may still become a plain head; with done, h.plain tells whether
// it is one. A plain head is exactly:
//
//	POST /v1/events HTTP/1.1 CRLF
//	(Name: value CRLF) ...      at most plainHeaderMax lines
//	CRLF
//
// with one Host and one Content-Length (digits, at most MaxBodyBytes), at
// most one Authorization and Connection ("keep-alive" or "close"), and no
// header names but those and Content-Type, Accept, Accept-Encoding and
// User-Agent. Names are tokens of letters, digits and '-', in any case;
// values are printable ASCII or tabs, with optional white space around
// them. Anything else (another method, path, query or version, a
// Transfer-Encoding, an Expect, a bare LF, obsolete line folding, a byte
// net/http would refuse) is not plain, and net/http answers it.
func parsePlainHead(b []byte) (h plainHead, done bool) {
	n := min(len(b), len(plainLine))
	if string(b[:n]) != plainLine[:n] {
		return h, true
	}
	if n < len(plainLine) {
		return h, false
	}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return h, len(b) >= plainHeadMax
	}
	h.headLen = end + 4
	if h.headLen > plainHeadMax {
		return h, true
	}
	var host, length, conn, auth int
	lines := b[len(plainLine) : end+2]
	for i := 0; len(lines) > 0; i++ {
		eol := bytes.Index(lines, []byte("\r\n"))
		line := lines[:eol]
		lines = lines[eol+2:]
		name, value, ok := splitHeader(line)
		if !ok || i >= plainHeaderMax {
			return h, true
		}
		switch {
		case asciiEqualFold(name, "host"):
			if host++; !validHost(value) {
				return h, true
			}
		case asciiEqualFold(name, "content-length"):
			length++
			if h.bodyLen, ok = parseLength(value); !ok {
				return h, true
			}
		case asciiEqualFold(name, "connection"):
			conn++
			switch {
			case asciiEqualFold(value, "close"):
				h.close = true
			case !asciiEqualFold(value, "keep-alive"):
				return h, true
			}
		case asciiEqualFold(name, "authorization"):
			auth++
			h.auth = value
		case asciiEqualFold(name, "content-type"), asciiEqualFold(name, "accept"),
			asciiEqualFold(name, "accept-encoding"), asciiEqualFold(name, "user-agent"):
		default:
			return h, true
		}
	}
	h.plain = host == 1 && length == 1 && conn <= 1 && auth <= 1
	return h, true
}

// splitHeader splits "Name: value" and trims the value's white space; ok
// is false unless the name is a plain token and the value printable.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return nil, nil, false
		}
	}
	value = line[colon+1:]
	for _, c := range value {
		if c != '\t' && (c < ' ' || c > '~') {
			return nil, nil, false
		}
	}
	return name, bytes.Trim(value, " \t"), true
}

// parseLength parses a Content-Length of digits only, at most
// MaxBodyBytes.
func parseLength(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 7 {
		return 0, false
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= MaxBodyBytes
}

// validHost takes a non-empty host[:port] of letters, digits and ".-:[]_".
func validHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			bytes.IndexByte([]byte(".-:[]_"), c) >= 0) {
			return false
		}
	}
	return true
}

// asciiEqualFold compares b with lower, a lower-case ASCII string, in any
// case.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// appendAnswerHead appends the status line and headers of an answer with
// a JSON body of n bytes, as net/http writes those of writeBody.
func appendAnswerHead(b []byte, status, n int, close bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nCache-Control: no-store\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\nContent-Type: application/json\r\nDate: "...)
	b = appendDate(b)
	if close {
		b = append(b, "\r\nConnection: close"...)
	}
	return append(b, "\r\n\r\n"...)
}

// dateCache holds the Date header of the current second.
type dateCache struct {
	sec int64
	val []byte
}

var lastDate atomic.Pointer[dateCache]

// appendDate appends the time now in the format of HTTP's Date header.
func appendDate(b []byte) []byte {
	now := time.Now()
	d := lastDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateCache{sec: now.Unix(), val: now.UTC().AppendFormat(nil, http.TimeFormat)}
		lastDate.Store(d)
	}
	return append(b, d.val...)
}
