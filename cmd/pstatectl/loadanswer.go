package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httputil"
)

// maxAnswerBody bounds the body of a 2xx answer to POST /v1/events (a
// result for each of at most 1000 events takes about 40 KB).
const maxAnswerBody = 4 << 20

// answerHead is what the load reads of an HTTP/1.1 answer's head: the
// status, how the body is framed and whether the connection stays open.
// net/http's ReadResponse builds a header map and a Response for each
// answer; at tens of thousands of answers a second that costs the
// generator a third of its CPU, which it takes from the daemon it measures.
type answerHead struct {
	status  int
	length  int64 // Content-Length, or -1
	chunked bool
	close   bool
}

// readHead reads an answer's status line and header fields from br,
// passing over interim (1xx) answers.
func readHead(br *bufio.Reader) (answerHead, error) {
	for {
		h, err := readOneHead(br)
		if err != nil || h.status >= 200 || h.status == 101 {
			return h, err
		}
	}
}

// readOneHead reads one status line and its header fields.
func readOneHead(br *bufio.Reader) (answerHead, error) {
	h := answerHead{length: -1}
	line, err := readLine(br)
	if err != nil {
		return h, err
	}
	// HTTP/1.x NNN reason
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return h, fmt.Errorf("malformed status line %q", line)
	}
	code, ok := digits(line[9:12])
	if !ok || code < 100 {
		return h, fmt.Errorf("malformed status code in %q", line)
	}
	http10 := line[7] == '0'
	h.status, h.close = int(code), http10 // HTTP/1.0 closes by default
	for {
		line, err := readLine(br)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return h, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqual(name, "content-length"):
			n, ok := digits(value)
			if !ok || (h.length >= 0 && n != h.length) {
				return h, fmt.Errorf("malformed or repeated Content-Length %q", value)
			}
			h.length = n
		case asciiEqual(name, "transfer-encoding") && !http10:
			// HTTP/1.1 frames a body with chunked or nothing; an
			// HTTP/1.0 answer's Transfer-Encoding means nothing.
			if !asciiEqual(value, "chunked") {
				return h, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			h.chunked = true
		case asciiEqual(name, "connection"):
			for _, t := range bytes.Split(value, []byte(",")) {
				if asciiEqual(bytes.TrimSpace(t), "close") {
					h.close = true
				}
			}
		}
	}
	switch {
	case h.status < 200 || h.status == 204 || h.status == 304:
		h.length, h.chunked = 0, false // no body, whatever the head says
	case !h.chunked && h.length < 0:
		h.close = true // the body runs to the end of the connection
	}
	return h, nil
}

// digits reads a decimal number of at most 18 digits, nothing else.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// readLine reads one line of the head without its CR LF; a line longer
// than br's buffer is refused.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("answer header line too long")
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// asciiEqual reports whether b equals the lower-case lower, ignoring ASCII
// case.
func asciiEqual(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// body returns the reader of the answer's body as the head frames it.
func (h answerHead) body(br *bufio.Reader) io.Reader {
	switch {
	case h.chunked:
		return &chunkedBody{br: br, r: httputil.NewChunkedReader(br)}
	case h.length >= 0:
		return io.LimitReader(br, h.length)
	}
	return br
}

// chunkedBody is a chunked body that, at its end, also reads the trailer
// section (httputil's reader stops at the last chunk), so that the next
// answer on the connection starts where it should.
type chunkedBody struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		for {
			line, lerr := readLine(c.br)
			if lerr != nil {
				return n, lerr
			}
			if len(line) == 0 {
				break
			}
		}
		c.done = true
	}
	return n, err
}

// readAnswer appends the whole of body to buf; a body past maxAnswerBody
// is refused.
func readAnswer(buf []byte, body io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > maxAnswerBody {
			return buf, fmt.Errorf("answer longer than %d bytes", maxAnswerBody)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
}

// parseSubmitAnswer reads an answer of POST /v1/events in exactly the
// layout the daemon writes ({"seq":N,"results":[{"seq":N,"duplicate":B},
// ...]} and a newline). It reports false for anything else, which the
// caller then hands to the general JSON decoder.
func parseSubmitAnswer(b []byte) ([]result, bool) {
	p := answerParser{b: b}
	if !p.lit(`{"seq":`) || !p.uint() || !p.lit(`,"results":[`) {
		return nil, false
	}
	// A result for each event; a batch holds at most 1000.
	n := min(bytes.Count(p.b[p.i:], []byte(`{"seq":`)), 1000)
	res := make([]result, 0, n)
	for len(res) == 0 || p.lit(",") {
		if !p.lit(`{"seq":`) || !p.uint() || !p.lit(`,"duplicate":`) {
			return nil, false
		}
		r := result{Seq: p.n}
		switch {
		case p.lit("true"):
			r.Duplicate = true
		case p.lit("false"):
		default:
			return nil, false
		}
		if !p.lit("}") {
			return nil, false
		}
		res = append(res, r)
	}
	if !p.lit("]}") {
		return nil, false
	}
	for ; p.i < len(p.b); p.i++ {
		if c := p.b[p.i]; c != '\n' && c != '\r' && c != ' ' && c != '\t' {
			return nil, false
		}
	}
	return res, true
}

// answerParser walks an answer for parseSubmitAnswer.
type answerParser struct {
	b []byte
	i int
	n uint64 // the last number read
}

func (p *answerParser) lit(s string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		return false
	}
	p.i += len(s)
	return true
}

// uint reads a JSON number that is a whole number from 0 to 2^64-1.
func (p *answerParser) uint() bool {
	var n uint64
	j := p.i
	for ; j < len(p.b) && '0' <= p.b[j] && p.b[j] <= '9'; j++ {
		d := uint64(p.b[j] - '0')
		if n > (math.MaxUint64-d)/10 {
			return false
		}
		n = n*10 + d
	}
	if j == p.i || (p.b[p.i] == '0' && j > p.i+1) {
		return false
	}
	p.i, p.n = j, n
	return true
}
