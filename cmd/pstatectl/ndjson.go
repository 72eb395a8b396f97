package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxLine is the longest event line accepted: a request holds at most
// 1 MiB, so a longer event could never be sent.
const maxLine = 1 << 20

// LineError is a bad line of NDJSON input.
type LineError struct {
	Line int
	Err  error
}

func (l *LineError) Error() string { return fmt.Sprintf("line %d: %v", l.Line, l.Err) }

func (l *LineError) Unwrap() error { return l.Err }

// ndjsonReader reads events, one JSON object per line. Blank lines are
// skipped; a line may end in \r\n. Each event is checked to be a JSON object
// with a non-empty string "type" and handed out compacted; the daemon does
// the real validation.
type ndjsonReader struct {
	br   *bufio.Reader
	line int   // number of the last line read
	read int64 // bytes consumed
	max  int   // longest line accepted
	buf  []byte
}

func newNDJSONReader(r io.Reader, max int) *ndjsonReader {
	return &ndjsonReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next event and its line number, or io.EOF after the last
// one. The event's bytes are valid until the next call. A bad line is a
// *LineError.
func (r *ndjsonReader) Next() (event []byte, line int, err error) {
	for {
		raw, err := r.readLine()
		if err != nil {
			return nil, r.line, err
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		ev, err := r.check(raw)
		if err != nil {
			return nil, r.line, &LineError{Line: r.line, Err: err}
		}
		return ev, r.line, nil
	}
}

// readLine returns the next line without its newline, io.EOF at the end.
func (r *ndjsonReader) readLine() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		r.read += int64(len(chunk))
		if len(r.buf)+len(chunk) > r.max+2 { // +2: room for \r\n
			r.line++
			return nil, &LineError{Line: r.line,
				Err: fmt.Errorf("line longer than %d bytes", r.max)}
		}
		r.buf = append(r.buf, chunk...)
		switch {
		case err == nil:
			r.line++
			return r.buf[:len(r.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(r.buf) == 0 {
				return nil, io.EOF
			}
			r.line++
			return r.buf, nil
		default:
			return nil, fmt.Errorf("read line %d: %w", r.line+1, err)
		}
	}
}

// check verifies that raw is a JSON object with a string "type" and returns
// it compacted.
func (r *ndjsonReader) check(raw []byte) ([]byte, error) {
	if raw[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("invalid event: %w", err)
	}
	if head.Type == nil || *head.Type == "" {
		return nil, errors.New(`event has no "type"`)
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	if err := json.Compact(&out, raw); err != nil {
		return nil, fmt.Errorf("invalid event: %w", err)
	}
	return out.Bytes(), nil
}
