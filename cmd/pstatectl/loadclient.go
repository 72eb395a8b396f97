package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// result is the answer for one event: its seq and whether its id had been
// applied before.
type result struct {
	Seq       uint64
	Duplicate bool
}

// sender delivers one request of n events (a single event, or
// {"events":[...]}) and returns a result per event. Each client has its own
// sender; one that holds a connection also has a close method, called when
// the client ends.
type sender interface {
	send(ctx context.Context, body []byte, n int) ([]result, error)
}

// loadStats are the counters all clients share; the progress line reads
// them while the clients run.
type loadStats struct {
	events   atomic.Uint64 // events answered
	requests atomic.Uint64 // requests answered
	failed   atomic.Uint64 // requests that failed

	mu      sync.Mutex // guards the fields below
	first   error      // the first failure
	kinds   map[string]int
	jobs    int // jobs whose whole lifecycle was answered
	dropped int // jobs left behind after a failed request
}

// fail counts a failed request.
func (s *loadStats) fail(err error) {
	s.failed.Add(1)
	kind := "transport"
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		kind = fmt.Sprintf("%d %s", ae.Status, ae.Code)
	case errors.Is(err, errDuplicate):
		kind = "duplicate"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = err
	}
	if s.kinds == nil {
		s.kinds = map[string]int{}
	}
	s.kinds[kind]++
}

// errDuplicate is an answer saying an event of the load was applied before:
// its ids are fresh, so that is a fault.
var errDuplicate = errors.New("the daemon answered duplicate for a fresh event id")

// maxConsecutiveFailures stops a client whose requests keep failing, e.g.
// because the daemon went away.
const maxConsecutiveFailures = 5

// loadClient drives its own jobs through their lifecycles, one request at
// a time.
type loadClient struct {
	gen    *generator
	snd    sender
	rec    *recorder // nil without --record
	stats  *loadStats
	batch  int // events per request
	single bool
	target int // jobs kept active
	quota  int // jobs still to start; -1 for no limit

	active []*simJob
	evs    []loadEvent
	owners []*simJob
	body   []byte
	hist   histogram
}

// bodyReserve keeps room in a request for one more event of the largest
// kind (job.submitted with --steps at most maxSteps).
const bodyReserve = 16 << 10

// run sends requests until the deadline (zero for none), the end of ctx or
// the end of the client's jobs.
func (c *loadClient) run(ctx context.Context, deadline time.Time) {
	if cl, ok := c.snd.(interface{ close() }); ok {
		defer cl.close()
	}
	failures := 0
	for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
		c.fill()
		if len(c.evs) == 0 {
			return
		}
		start := time.Now()
		res, err := c.snd.send(ctx, c.body, len(c.evs))
		elapsed := time.Since(start)
		if err == nil && len(res) != len(c.evs) {
			err = fmt.Errorf("%d events sent, %d results answered", len(c.evs), len(res))
		}
		if err == nil {
			err = c.settle(res)
		}
		if err != nil {
			if ctx.Err() != nil {
				return // interrupted: neither a failure nor an answer
			}
			c.stats.fail(err)
			c.drop()
			if failures++; failures >= maxConsecutiveFailures {
				return
			}
			continue
		}
		failures = 0
		c.hist.record(elapsed)
		c.stats.requests.Add(1)
		c.stats.events.Add(uint64(len(c.evs)))
	}
}

// fill builds the next request from the active jobs, starting new ones
// while the quota allows. It leaves evs empty when every job is done.
func (c *loadClient) fill() {
	c.evs, c.owners = c.evs[:0], c.owners[:0]
	c.body = c.body[:0]
	if !c.single {
		c.body = append(c.body, batchHead...)
	}
	for len(c.evs) < c.batch && len(c.body)+bodyReserve < maxBatchBytes {
		for len(c.active) < c.target && c.quota != 0 {
			c.active = append(c.active, c.gen.newJob())
			if c.quota > 0 {
				c.quota--
			}
		}
		j := c.pick()
		if j == nil {
			break
		}
		e := c.gen.next(j)
		if len(c.evs) > 0 {
			c.body = append(c.body, ',')
		}
		c.body = e.appendJSON(c.body)
		c.evs = append(c.evs, e)
		c.owners = append(c.owners, j)
	}
	if !c.single {
		c.body = append(c.body, batchTail...)
	}
}

// pick returns a random active job that may send its next event, or nil.
func (c *loadClient) pick() *simJob {
	n := len(c.active)
	if n == 0 {
		return nil
	}
	off := c.gen.rng.IntN(n)
	for i := range n {
		j := c.active[(off+i)%n]
		if !j.waiting && j.phase != phDone {
			return j
		}
	}
	return nil
}

// settle takes the answer of a request: records the events, lets waiting
// jobs go on and retires the finished ones.
func (c *loadClient) settle(res []result) error {
	for _, r := range res {
		if r.Duplicate {
			return errDuplicate
		}
	}
	if c.rec != nil {
		c.rec.write(c.evs, res)
	}
	kept := c.active[:0]
	done := 0
	for _, j := range c.active {
		j.waiting = false
		if j.phase == phDone {
			done++
			continue
		}
		kept = append(kept, j)
	}
	clear(c.active[len(kept):])
	c.active = kept
	if done > 0 {
		c.stats.mu.Lock()
		c.stats.jobs += done
		c.stats.mu.Unlock()
	}
	return nil
}

// drop gives up the jobs of a failed request: what the daemon holds of
// them is unknown (a refused batch changed nothing; a lost answer may have
// changed all).
func (c *loadClient) drop() {
	gone := map[*simJob]bool{}
	for _, j := range c.owners {
		gone[j] = true
	}
	kept := c.active[:0]
	for _, j := range c.active {
		if !gone[j] {
			kept = append(kept, j)
		}
	}
	clear(c.active[len(kept):])
	c.active = kept
	c.stats.mu.Lock()
	c.stats.dropped += len(gone)
	c.stats.mu.Unlock()
}
