package pstate

import (
	"fmt"
	"time"
)

// loop is the only goroutine that validates, writes and applies. cur is the
// evolving state: it holds every record written, durable or not; written is
// the seq of the last record written.
func (e *Engine) loop(cur *State) {
	defer close(e.loopDone)
	defer close(e.durable) // the syncer finishes what is queued, then stops

	var tick <-chan time.Time
	if e.opts.RetainFinished > 0 {
		t := time.NewTicker(e.opts.PurgeInterval)
		defer t.Stop()
		tick = t.C
	}
	written := cur.Seq()
	for {
		var first *request
		select {
		case first = <-e.reqs:
		case <-tick:
			first = e.purges(cur)
		case <-e.quit:
			return
		}
		if first == nil {
			continue
		}
		reqs, n := []*request{first}, len(first.events)
	drain:
		for n < e.opts.MaxBatch {
			select {
			case r := <-e.reqs:
				reqs, n = append(reqs, r), n+len(r.events)
			default:
				break drain
			}
		}
		cur, written = e.runGroup(cur, written, reqs)
	}
}

// purges returns an internal request purging the jobs that finished more
// than RetainFinished ago, or nil when there are none.
func (e *Engine) purges(cur *State) *request {
	now := e.opts.Clock()
	ids := cur.purgeable(now.Add(-e.opts.RetainFinished).UnixNano(), e.opts.MaxBatch)
	if len(ids) == 0 {
		return nil
	}
	events := make([]Event, len(ids))
	for i, id := range ids {
		events[i] = Event{Type: TypeJobPurged, Time: now, JobID: id, Effect: true}
	}
	return &request{events: events, internal: true}
}

// runGroup prepares each request in one draft over the evolving state,
// writes the records of those that passed with one Write, commits the draft
// into the next root and hands it to the syncer. A refused request is
// answered at once: the draft is rolled back to before it, nothing of it is
// logged, and the other requests go on.
func (e *Engine) runGroup(cur *State, written uint64, reqs []*request) (*State, uint64) {
	if err := e.Err(); err != nil {
		for _, r := range reqs {
			r.answer(err)
		}
		return cur, written
	}
	start := time.Now()
	now := e.opts.Clock()
	d := e.draft
	if d == nil {
		// The loop's draft and its id index (id -> window position) live
		// as long as the loop; only the loop touches them.
		d = newDraft(cur, cur.ids.indexIDs())
		d.record = true
		e.draft = d
	}
	d.reset(cur)
	d.seq = written
	var payloads [][]byte
	accepted := reqs[:0:0]
	for _, r := range reqs {
		p, err := d.prepare(r.events, now, r.internal)
		if err != nil {
			r.answer(err)
			continue
		}
		r.results = p.results
		payloads = append(payloads, p.payloads...)
		accepted = append(accepted, r)
	}
	next, seq := d.commit(), d.seq
	if e.opts.OnApply != nil {
		e.opts.OnApply(len(payloads), time.Since(start))
	}
	if len(payloads) > 0 {
		first, last, err := e.log.Write(payloads)
		if err == nil && (first != written+1 || last != seq) {
			err = fmt.Errorf("log assigned seqs %d..%d, the state expected %d..%d",
				first, last, written+1, seq)
		}
		if err != nil {
			// Nothing of this group is published; the state stays at what
			// was written before.
			e.fail(fmt.Errorf("write log: %w", err))
			for _, r := range accepted {
				r.answer(e.Err())
			}
			return cur, written
		}
	}
	e.durable <- &group{last: seq, root: next, reqs: accepted}
	return next, seq
}

// syncer waits for each group's records to be durable, then publishes its
// root (one atomic store), reports the processed seq and answers its
// requests. After a failure it publishes nothing more: every later root
// holds the records that failed.
func (e *Engine) syncer() {
	defer close(e.syncDone)
	defer e.wake()
	var failure error
	for g := range e.durable {
		if failure == nil && g.last > 0 {
			if err := e.log.WaitDurable(g.last); err != nil {
				e.fail(fmt.Errorf("wait for durable seq %d: %w", g.last, err))
				failure = e.Err()
			}
		}
		if failure != nil {
			for _, r := range g.reqs {
				r.answer(failure)
			}
			continue
		}
		if g.root.Seq() > e.root.Load().Seq() {
			e.root.Store(g.root)
			e.wake()
			e.log.SetProcessed(g.last)
		}
		for _, r := range g.reqs {
			r.answer(nil)
		}
	}
}
