package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Limits of one POST /v1/events.
const (
	maxBatchEvents = 1000
	maxBatchBytes  = 1 << 20
)

// batchHead and batchTail frame the events of a batch request.
const (
	batchHead = `{"events":[`
	batchTail = `]}`
)

func runSubmit(e *env, args []string) error {
	fs := newFlagSet(e, "submit", "[FILE|-] [--batch N]",
		"Send the NDJSON events of FILE (default stdin) in batches and print the\n"+
			"last seq. A batch is atomic; on an error the batches before it stay\n"+
			"submitted. A progress bar is drawn when stderr is a terminal.")
	var cf clientFlags
	cf.register(fs, e)
	batch := fs.Int("batch", 500, "events per request (1 to 1000)")
	noProgress := fs.Bool("no-progress", false, "never draw the progress bar")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef(fs, "want at most one file, got %d arguments", len(pos))
	}
	if *batch < 1 || *batch > maxBatchEvents {
		return usagef(fs, "--batch must be 1 to %d, got %d", maxBatchEvents, *batch)
	}

	in, total, closeIn, err := openInput(e, pos)
	if err != nil {
		return err
	}
	defer closeIn()
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	s := &submitter{e: e, c: c, batch: *batch, r: newNDJSONReader(in, maxLine)}
	if !*noProgress && isTerminal(e.stderr) {
		s.bar = newProgress(e.stderr, total)
	}
	err = s.run()
	if s.bar != nil {
		s.bar.done(s.sent, s.r.read)
	}
	if err != nil {
		if s.sent > 0 {
			fmt.Fprintf(e.stderr, "%d events before the failed batch were submitted "+
				"(last seq %d)\n", s.sent, s.lastSeq)
		}
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "last seq %d (%d events, %d duplicates)\n",
		s.lastSeq, s.sent, s.dups)
	return err
}

// openInput opens the file named by pos, or stdin for none or "-", and
// returns its size when it is a regular file (0 otherwise).
func openInput(e *env, pos []string) (io.Reader, int64, func(), error) {
	if len(pos) == 0 || pos[0] == "-" {
		var size int64
		if f, ok := e.stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
		}
		return e.stdin, size, func() {}, nil
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return nil, 0, nil, fmt.Errorf("open events: %w", err)
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// submitter sends the events of one reader in batches.
type submitter struct {
	e     *env
	c     *Client
	r     *ndjsonReader
	batch int
	bar   *progress

	body    []byte // the request being built
	lines   []int  // line number of each event in body
	sent    int64  // events answered
	dups    int64  // of which duplicates
	lastSeq uint64
}

// run reads every event and sends full batches, then the rest.
func (s *submitter) run() error {
	s.body = append(s.body[:0], batchHead...)
	for {
		ev, line, err := s.r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(batchHead)+len(ev)+len(batchTail) >= maxBatchBytes {
			return &LineError{Line: line,
				Err: fmt.Errorf("event of %d bytes does not fit a request", len(ev))}
		}
		if len(s.body)+1+len(ev)+len(batchTail) >= maxBatchBytes {
			if err := s.flush(); err != nil {
				return err
			}
		}
		if len(s.lines) > 0 {
			s.body = append(s.body, ',')
		}
		s.body = append(s.body, ev...)
		s.lines = append(s.lines, line)
		if len(s.lines) == s.batch {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	return s.flush()
}

// flush sends the batch built so far, if any.
func (s *submitter) flush() error {
	if len(s.lines) == 0 {
		return nil
	}
	s.body = append(s.body, batchTail...)
	b, err := s.c.Post(s.e.ctx, "/v1/events", s.body)
	if err != nil {
		return s.batchError(err)
	}
	var ans submitAnswer
	if err := decodeJSON(b, "events", &ans); err != nil {
		return err
	}
	if len(ans.Results) != len(s.lines) {
		return fmt.Errorf("lines %d-%d: %d events sent, %d results answered",
			s.lines[0], s.lines[len(s.lines)-1], len(s.lines), len(ans.Results))
	}
	for _, r := range ans.Results {
		if r.Duplicate {
			s.dups++
		}
	}
	s.sent += int64(len(s.lines))
	s.lastSeq = ans.Seq
	if s.bar != nil {
		s.bar.update(s.sent, s.r.read)
	}
	s.body = append(s.body[:0], batchHead...)
	s.lines = s.lines[:0]
	return nil
}

// batchError names the line of the event an error answer points at, or
// the lines of the batch.
func (s *submitter) batchError(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		i := ae.Index
		if i < 0 {
			i = eventIndex(ae.Message)
		}
		if i >= 0 && i < len(s.lines) {
			return &LineError{Line: s.lines[i], Err: err}
		}
	}
	return fmt.Errorf("batch of lines %d-%d: %w", s.lines[0], s.lines[len(s.lines)-1], err)
}

// submitAnswer is the answer of POST /v1/events.
type submitAnswer struct {
	Seq     uint64 `json:"seq"`
	Results []struct {
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	} `json:"results"`
}

// eventIndex reads the index of the event an error message of POST
// /v1/events starts with ("event 3: ..."), or returns -1.
func eventIndex(msg string) int {
	rest, ok := strings.CutPrefix(msg, "event ")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 {
		return -1
	}
	return i
}
