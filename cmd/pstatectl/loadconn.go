package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// connSender is the load's sender: one HTTP/1.1 keep-alive connection of
// its own per client, the request written by hand and the answer read with
// http.ReadResponse. net/http's client hands every request between three
// goroutines (caller, writer, reader); on a small machine that CPU is taken
// from the daemon being measured, so each load client talks on its own
// connection without them.
//
// A connSender is used by one client goroutine at a time.
type connSender struct {
	network, address string
	token            string
	timeout          time.Duration // of one request, dial included

	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	head []byte
	body []byte // the last answer's body

	deadline time.Time       // of the connection
	ctx      context.Context // whose cancelling stop unregisters
	stop     func() bool

	ans submitAnswer
}

func newConnSender(c *Client) *connSender {
	return &connSender{network: c.network, address: c.address, token: c.token,
		timeout: time.Minute}
}

// send posts body to /v1/events on the sender's connection, dialing a new
// one when there is none. Any failure closes the connection: a request is
// never retried (the caller counts it and drops the jobs it carried).
func (s *connSender) send(ctx context.Context, body []byte, n int) ([]result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := s.roundTrip(ctx, body)
	if err != nil {
		s.close()
		return nil, err
	}
	return res, nil
}

func (s *connSender) roundTrip(ctx context.Context, body []byte) ([]result, error) {
	now := time.Now()
	if s.conn == nil {
		d := net.Dialer{Deadline: now.Add(s.timeout)}
		c, err := d.DialContext(ctx, s.network, s.address)
		if err != nil {
			return nil, fmt.Errorf("POST /v1/events at %s: %w", s.address, err)
		}
		s.conn, s.br, s.bw = c, bufio.NewReaderSize(c, 16<<10), bufio.NewWriterSize(c, 64<<10)
		s.deadline = time.Time{}
	}
	if ctx != s.ctx || s.stop == nil {
		// Cancelling ctx ends a request in flight by moving the
		// connection's deadline; registered once per connection and
		// context, not per request.
		if s.stop != nil {
			s.stop()
		}
		conn := s.conn
		s.ctx, s.stop = ctx, context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	}
	// The deadline is moved on only once half of it has passed: each
	// request has between timeout/2 and timeout.
	if s.deadline.Sub(now) < s.timeout/2 {
		s.deadline = now.Add(s.timeout)
		if err := s.conn.SetDeadline(s.deadline); err != nil {
			return nil, fmt.Errorf("set deadline: %w", err)
		}
	}

	s.head = append(s.head[:0], "POST /v1/events HTTP/1.1\r\nHost: pstated\r\n"+
		"Content-Type: application/json\r\nContent-Length: "...)
	s.head = strconv.AppendInt(s.head, int64(len(body)), 10)
	if s.token != "" {
		s.head = append(s.head, "\r\nAuthorization: Bearer "...)
		s.head = append(s.head, s.token...)
	}
	s.head = append(s.head, "\r\n\r\n"...)
	s.bw.Write(s.head)
	s.bw.Write(body)
	if err := s.bw.Flush(); err != nil {
		return nil, fmt.Errorf("POST /v1/events: write: %w", err)
	}

	head, err := readHead(s.br)
	if err != nil {
		return nil, fmt.Errorf("POST /v1/events: read answer: %w", err)
	}
	ans := head.body(s.br)
	if head.status/100 != 2 {
		// apiError reads a bounded part of the body: the connection is
		// closed (by send) rather than reused at an unknown position.
		return nil, apiError(&http.Response{StatusCode: head.status,
			Body: io.NopCloser(ans)})
	}
	s.body, err = readAnswer(s.body[:0], ans)
	if err != nil {
		return nil, fmt.Errorf("POST /v1/events: read answer: %w", err)
	}
	if head.close {
		s.close()
	}
	return s.decode(s.body)
}

// decode turns the answer into one result per event.
func (s *connSender) decode(b []byte) ([]result, error) {
	if res, ok := parseSubmitAnswer(b); ok {
		return res, nil
	}
	// Not in the daemon's own layout (spaces, another field order): the
	// general decoder takes any valid JSON.
	s.ans.Results = s.ans.Results[:0]
	if err := decodeJSON(b, "events", &s.ans); err != nil {
		return nil, err
	}
	res := make([]result, len(s.ans.Results))
	for i, r := range s.ans.Results {
		res[i] = result{Seq: r.Seq, Duplicate: r.Duplicate}
	}
	return res, nil
}

// close drops the connection; the next request dials a new one.
func (s *connSender) close() {
	if s.stop != nil {
		s.stop()
		s.ctx, s.stop = nil, nil
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.br, s.bw = nil, nil, nil
	}
}
