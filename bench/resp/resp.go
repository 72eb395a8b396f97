// Package resp is a small client for the Redis serialization protocol
// (RESP2), enough to drive a Redis server with pipelined commands from the
// benchmark harness.
//
// A reply is one type byte, a line ending in CRLF, and for bulk strings and
// arrays a payload:
//
//	+OK\r\n                 simple string
//	-ERR message\r\n        error
//	:42\r\n                 integer
//	$5\r\nhello\r\n         bulk string ($-1 is null)
//	*2\r\n<reply><reply>    array (*-1 is null)
package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// Limits applied while decoding a reply.
const (
	MaxBulk  = 64 << 20
	MaxArray = 1 << 24
	MaxDepth = 16
)

// Value is one decoded reply.
type Value struct {
	Kind  byte // '+', '-', ':', '$' or '*'
	Str   string
	Int   int64
	Array []Value
	Null  bool
}

// Error is an error reply of the server.
type Error string

func (e Error) Error() string { return "redis: " + string(e) }

// ErrProtocol is wrapped by every malformed reply.
var ErrProtocol = errors.New("resp: protocol error")

// Read decodes one reply from r.
func Read(r *bufio.Reader) (Value, error) {
	return read(r, 0)
}

func read(r *bufio.Reader, depth int) (Value, error) {
	line, err := readLine(r)
	if err != nil {
		return Value{}, err
	}
	if len(line) == 0 {
		return Value{}, fmt.Errorf("%w: empty line", ErrProtocol)
	}
	v := Value{Kind: line[0]}
	rest := string(line[1:])
	switch v.Kind {
	case '+', '-':
		v.Str = rest
		return v, nil
	case ':':
		v.Int, err = strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: integer %q", ErrProtocol, rest)
		}
		return v, nil
	case '$':
		return readBulk(r, v, rest)
	case '*':
		return readArray(r, v, rest, depth)
	}
	return Value{}, fmt.Errorf("%w: type byte %q", ErrProtocol, v.Kind)
}

func readBulk(r *bufio.Reader, v Value, rest string) (Value, error) {
	n, err := strconv.Atoi(rest)
	if err != nil || n < -1 || n > MaxBulk {
		return Value{}, fmt.Errorf("%w: bulk length %q", ErrProtocol, rest)
	}
	if n == -1 {
		v.Null = true
		return v, nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Value{}, err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return Value{}, fmt.Errorf("%w: bulk string not ended by CRLF", ErrProtocol)
	}
	v.Str = string(buf[:n])
	return v, nil
}

func readArray(r *bufio.Reader, v Value, rest string, depth int) (Value, error) {
	n, err := strconv.Atoi(rest)
	if err != nil || n < -1 || n > MaxArray {
		return Value{}, fmt.Errorf("%w: array length %q", ErrProtocol, rest)
	}
	if depth >= MaxDepth {
		return Value{}, fmt.Errorf("%w: arrays nested deeper than %d", ErrProtocol, MaxDepth)
	}
	if n == -1 {
		v.Null = true
		return v, nil
	}
	v.Array = make([]Value, 0, min(n, 1024))
	for range n {
		e, err := read(r, depth+1)
		if err != nil {
			return Value{}, err
		}
		v.Array = append(v.Array, e)
	}
	return v, nil
}

func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, r.Size())
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", ErrProtocol)
	}
	return line[:len(line)-2], nil
}

// AppendCommand encodes one command as an array of bulk strings.
func AppendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// Conn is one connection. It is not safe for concurrent use.
type Conn struct {
	c       net.Conn
	r       *bufio.Reader
	buf     []byte
	pending int
}

// Dial connects to a server ("unix", path) or ("tcp", host:port).
func Dial(network, addr string) (*Conn, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Append queues a command; Flush sends every queued command.
func (c *Conn) Append(args ...string) {
	c.buf = AppendCommand(c.buf, args...)
	c.pending++
}

// Exec sends the queued commands and reads one reply for each. It returns
// the replies and the first error reply, if any, as an Error.
func (c *Conn) Exec() ([]Value, error) {
	n := c.pending
	_, err := c.c.Write(c.buf)
	c.buf, c.pending = c.buf[:0], 0
	if err != nil {
		return nil, err
	}
	out := make([]Value, n)
	var first error
	for i := range out {
		v, err := Read(c.r)
		if err != nil {
			return nil, err
		}
		if v.Kind == '-' && first == nil {
			first = Error(v.Str)
		}
		out[i] = v
	}
	return out, first
}

// Do sends one command and returns its reply.
func (c *Conn) Do(args ...string) (Value, error) {
	c.Append(args...)
	vs, err := c.Exec()
	if len(vs) == 0 {
		return Value{}, err
	}
	return vs[0], err
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }
