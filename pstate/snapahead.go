package pstate

import (
	"bytes"
	"io"
	"strings"
)

// aheadReader reads r on a goroutine of its own, a few buffers ahead of
// its reader, so that the work behind r's Read (decompressing and checking
// a snapshot file) runs beside the decoding of the bytes already read.
// Close must be called; r is not read after Close returns.
type aheadReader struct {
	full chan aheadBuf // read, in order
	free chan []byte   // given back by Read
	stop chan struct{}
	done chan struct{}
	cur  aheadBuf // being read by Read, from off
	off  int
}

// aheadBuf is one buffer as r filled it, and r's error after it.
type aheadBuf struct {
	b   []byte
	err error
}

const (
	aheadBufs    = 4
	aheadBufSize = 256 << 10
)

// readAhead returns r read ahead on a goroutine, and the function that
// stops it; an in-memory r is returned as it is: reading it costs nothing
// that could run beside.
func readAhead(r io.Reader) (io.Reader, func()) {
	switch r.(type) {
	case *bytes.Reader, *bytes.Buffer, *strings.Reader:
		return r, func() {}
	}
	a := &aheadReader{full: make(chan aheadBuf, aheadBufs), free: make(chan []byte, aheadBufs),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range aheadBufs {
		a.free <- make([]byte, aheadBufSize)
	}
	go a.run(r)
	return a, a.close
}

func (a *aheadReader) run(r io.Reader) {
	defer close(a.done)
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.stop:
			return
		}
		// Fill the buffer, keeping r's error as it is (an io.EOF ends
		// the body; anything else is damage the decoder reports).
		n, err := 0, error(nil)
		for n < len(b) && err == nil {
			var k int
			k, err = r.Read(b[n:])
			n += k
		}
		select {
		case a.full <- aheadBuf{b[:n], err}:
		case <-a.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for a.off == len(a.cur.b) {
		if a.cur.err != nil {
			return 0, a.cur.err
		}
		if a.cur.b != nil {
			a.free <- a.cur.b[:cap(a.cur.b)] // room for every buffer: never blocks
		}
		a.cur, a.off = <-a.full, 0
	}
	n := copy(p, a.cur.b[a.off:])
	a.off += n
	return n, nil
}

// close stops the goroutine and waits for it to end.
func (a *aheadReader) close() {
	close(a.stop)
	<-a.done
}
