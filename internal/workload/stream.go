package workload

import "math/rand/v2"

// Stream interleaves the events of a range of jobs the way many workers
// would: up to a number of jobs are in flight at once, and each next event
// comes from one of them picked at random. Every job's own events keep
// their order, so the stream is valid whenever each job's sequence is.
// A Stream is not safe for concurrent use.
type Stream struct {
	g      *Generator
	rng    *rand.Rand
	next   int // number of the next job to start
	end    int // one past the last job's number
	active []*cursor
	free   []*cursor
}

type cursor struct {
	evs []Event
	pos int
}

// Stream returns the interleaved events of jobs first .. first+count-1 with
// at most active jobs in flight (at least 1). The interleaving depends on
// the seed and first alone.
func (g *Generator) Stream(first, count, active int) *Stream {
	return &Stream{
		g:      g,
		rng:    rand.New(rand.NewPCG(g.cfg.Seed^0x9e3779b97f4a7c15, uint64(first))),
		next:   first,
		end:    first + count,
		active: make([]*cursor, 0, max(active, 1)),
	}
}

// Next returns the next event, or false once every job has been yielded.
// The event's maps and slices are shared with nothing else the stream
// returns later.
func (s *Stream) Next() (Event, bool) {
	for len(s.active) < cap(s.active) && s.next < s.end {
		var c *cursor
		if n := len(s.free); n > 0 {
			c, s.free = s.free[n-1], s.free[:n-1]
		} else {
			c = new(cursor)
		}
		c.evs, c.pos = s.g.AppendJob(c.evs[:0], s.next), 0
		s.next++
		s.active = append(s.active, c)
	}
	if len(s.active) == 0 {
		return Event{}, false
	}
	i := s.rng.IntN(len(s.active))
	c := s.active[i]
	e := c.evs[c.pos]
	c.evs[c.pos] = Event{}
	c.pos++
	if c.pos == len(c.evs) {
		last := len(s.active) - 1
		s.active[i], s.active[last] = s.active[last], nil
		s.active = s.active[:last]
		s.free = append(s.free, c)
	}
	return e, true
}
