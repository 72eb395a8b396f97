package pstate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Log is where the engine writes records; *wal.Log satisfies it.
type Log interface {
	// Write assigns consecutive seqs to the payloads and writes them, all or
	// nothing, without waiting for them to be durable.
	Write(payloads [][]byte) (first, last uint64, err error)
	// WaitDurable returns once every record up to seq is durable.
	WaitDurable(seq uint64) error
	// SetProcessed records that the state holds every record up to seq.
	SetProcessed(seq uint64)
}

// Errors of Submit and WaitSeq.
var (
	// ErrReadOnly: the log failed; the engine refuses writes for good. The
	// error returned wraps it and the cause.
	ErrReadOnly = errors.New("pstate: read-only")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("pstate: engine closed")
)

// Result answers one event of a request: the seq it got, or, for a
// duplicate, the seq the first event with its id got.
type Result struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// Options configure an Engine. The zero value works.
type Options struct {
	// Clock gives the time of events posted without one, and of purges.
	// Default time.Now.
	Clock func() time.Time
	// RetainFinished > 0 purges jobs that finished longer ago than this.
	RetainFinished time.Duration
	// PurgeInterval is how often the loop looks for jobs to purge. Default
	// RetainFinished/10, within 1s..1m.
	PurgeInterval time.Duration
	// MaxBatch is how many events the loop gathers from queued requests
	// before it writes them as one group. Default 4096; a single request
	// larger than it still goes whole.
	MaxBatch int
	// Pipeline is how many written groups may wait for durability while the
	// loop goes on with the next. Default 4.
	Pipeline int
	// OnApply is called by the loop after each group with the records
	// applied (events and effects) and the time validating and applying
	// them took.
	OnApply func(events int, d time.Duration)
	// OnReadOnly is called once when the engine turns read-only.
	OnReadOnly func(err error)
}

func (o *Options) fill() {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RetainFinished < 0 {
		o.RetainFinished = 0
	}
	if o.PurgeInterval <= 0 {
		o.PurgeInterval = min(max(o.RetainFinished/10, time.Second), time.Minute)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.Pipeline <= 0 {
		o.Pipeline = 4
	}
}

// Engine owns the state: one loop goroutine validates, logs and applies
// events; a second waits for durability and publishes roots.
//
// Invariants readers rely on:
//   - root only ever holds a *State whose every record is durable; it is
//     stored by the syncer alone, after WaitDurable, in seq order.
//   - nothing a *State can read changes after it is built. The one
//     exception is written only where no root reads: id window slots at or
//     above a root's end, in a chunk it shares, and each chunk's claim
//     counter (atomic) and lookup map (set before any root that reads it).
//   - notify holds a channel closed (and replaced) after each store of root,
//     on failure and on close, so WaitSeq wakes without polling.
type Engine struct {
	log  Log
	opts Options

	root   atomic.Pointer[State]
	notify atomic.Pointer[chan struct{}]
	failed atomic.Pointer[error] // the first log failure, wrapped
	closed atomic.Bool

	reqs      chan *request // unbuffered: a send succeeds only if the loop takes it
	quit      chan struct{}
	closeOnce sync.Once
	durable   chan *group // loop -> syncer, in seq order
	loopDone  chan struct{}
	syncDone  chan struct{}

	draft *draft // the loop's alone: reused for every group
}

type request struct {
	events   []Event
	internal bool // engine-made purges: no one waits
	results  []Result
	err      error
	done     chan struct{}
}

func (r *request) answer(err error) {
	r.err = err
	if r.done != nil {
		close(r.done)
	}
}

// group is what one loop batch wrote: the records up to last, the state
// after them and the requests to answer once they are durable.
type group struct {
	last uint64
	root *State
	reqs []*request
}

// Start starts the engine on root (nil: the empty state). root must hold
// every record of log before the next seq it will assign: the loop checks
// that the first seq Write returns is root.Seq()+1.
func Start(root *State, log Log, opts Options) *Engine {
	if root == nil {
		root = NewState()
	}
	opts.fill()
	e := &Engine{
		log: log, opts: opts,
		reqs:     make(chan *request),
		quit:     make(chan struct{}),
		durable:  make(chan *group, opts.Pipeline),
		loopDone: make(chan struct{}),
		syncDone: make(chan struct{}),
	}
	e.root.Store(root)
	ch := make(chan struct{})
	e.notify.Store(&ch)
	go e.loop(root)
	go e.syncer()
	return e
}

// Root returns the published state: one atomic load.
func (e *Engine) Root() *State { return e.root.Load() }

// Err returns nil, or the failure that made the engine read-only (it wraps
// ErrReadOnly and the cause).
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail turns the engine read-only; the first cause wins.
func (e *Engine) fail(cause error) {
	err := fmt.Errorf("%w: %w", ErrReadOnly, cause)
	if e.failed.CompareAndSwap(nil, &err) {
		if e.opts.OnReadOnly != nil {
			e.opts.OnReadOnly(err)
		}
		e.wake()
	}
}

// wake closes the notify channel after putting a fresh one in its place.
func (e *Engine) wake() {
	ch := make(chan struct{})
	close(*e.notify.Swap(&ch))
}

// Submit validates the events as one all-or-nothing request, logs them and
// their effects, and answers once they are durable and published: a read
// of Root after Submit returns sees them. Errors: *InputError,
// *ConflictError (with the event's index), ErrReadOnly (wrapped with its
// cause), ErrClosed, or the context's error (the events may still be
// applied).
func (e *Engine) Submit(ctx context.Context, events []Event) ([]Result, error) {
	if len(events) == 0 {
		return nil, &InputError{Field: "events", Message: "no events"}
	}
	if len(events) > MaxBatchEvents {
		return nil, &InputError{Field: "events", Message: fmt.Sprintf(
			"%d events; a request holds at most %d", len(events), MaxBatchEvents)}
	}
	if err := e.Err(); err != nil {
		return nil, err
	}
	r := &request{events: events, done: make(chan struct{})}
	select {
	case e.reqs <- r:
	case <-e.quit:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
		return r.results, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WaitSeq returns the published state once its seq has reached seq. It
// waits on a channel closed at each publish, never polls. It fails with the
// context's error, with ErrClosed once the engine is closed, or with the
// read-only error when the engine failed before reaching seq.
func (e *Engine) WaitSeq(ctx context.Context, seq uint64) (*State, error) {
	for {
		// Load the channel before the root: a publish after the root load
		// closes this very channel.
		ch := *e.notify.Load()
		r := e.root.Load()
		if r.Seq() >= seq {
			return r, nil
		}
		if err := e.Err(); err != nil {
			return r, err
		}
		if e.closed.Load() {
			select {
			case <-e.syncDone:
				if r = e.root.Load(); r.Seq() >= seq {
					return r, nil
				}
				return r, ErrClosed
			default:
			}
		}
		select {
		case <-ch:
		case <-e.syncDone:
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
}

// Close stops taking requests, answers those in flight once their records
// are durable (or failed), and stops both goroutines. Submits after Close
// fail with ErrClosed.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.quit)
	})
	<-e.loopDone
	<-e.syncDone
}
