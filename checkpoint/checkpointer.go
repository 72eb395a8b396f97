package checkpoint

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

// Capture is the state to snapshot, as taken by one atomic load of the
// published root: its meta and a function that encodes that very state.
// Encode runs on the Checkpointer's goroutine while the event loop goes on,
// so it must read only what never changes after publication. Counts, when
// set, gives Meta.Counts from that same state; it is called after the
// capture is timed, so that the capture time is the load's alone.
type Capture struct {
	Meta   Meta
	Encode func(w io.Writer) error
	Counts func() map[string]uint64
}

// Truncator is the part of the log the Checkpointer uses; *wal.Log
// satisfies it. Processed and Size must be cheap and lock-free: they are
// read beside the event loop, never under a lock it holds.
type Truncator interface {
	// Processed is the seq of the last record the event loop has applied.
	Processed() uint64
	// Size is the log's size in bytes.
	Size() int64
	// TruncateBefore drops the records before seq.
	TruncateBefore(seq uint64) error
}

// Config configures a Checkpointer. Capture and Log are required; every
// other zero field takes its default.
type Config struct {
	FS   vfs.FS // default vfs.OS
	Dir  string // the snapshots directory; must exist
	Keep int    // snapshots kept after a checkpoint; default 2

	// Interval is the time from the end of one checkpoint to the next;
	// default 60s, negative for none.
	Interval time.Duration
	// WALBytes triggers a checkpoint once Log.Size() reaches it; default
	// 64 MiB, negative for none. The size is polled every Poll (default 1s):
	// one atomic load, off the event loop. After a failed checkpoint the size
	// trigger waits for a success (by interval or request), so a full disk
	// is not hammered once per Poll.
	WALBytes int64
	Poll     time.Duration

	// Share bounds the CPU the encoding of a snapshot takes while events
	// are being applied, as a share of one core's time: between short
	// stretches of work the checkpointer sleeps, leaving the core to the
	// event loop and the writers (a checkpoint then lasts about 1/Share
	// times its CPU time). When the log's processed seq stands still it
	// does not sleep. Default 0.5; 1 or more: no bound; either way it
	// yields the scheduler every millisecond. Negative: no pacing at all.
	Share float64

	Capture func() Capture
	Log     Truncator

	// OnDone is called after each successful checkpoint (metrics, logging),
	// OnError after each failed one, both on the Checkpointer's goroutine
	// and before any Checkpoint caller waiting on that run is answered.
	OnDone  func(Result)
	OnError func(error)
}

func (c *Config) fill() {
	if c.FS == nil {
		c.FS = vfs.OS
	}
	if c.Keep == 0 {
		c.Keep = 2
	}
	if c.Interval == 0 {
		c.Interval = 60 * time.Second
	}
	if c.WALBytes == 0 {
		c.WALBytes = 64 << 20
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Share == 0 {
		c.Share = defaultShare
	}
}

func (c *Config) validate() error {
	switch {
	case c.Capture == nil:
		return fmt.Errorf("checkpoint: Config.Capture is nil")
	case c.Log == nil:
		return fmt.Errorf("checkpoint: Config.Log is nil")
	case c.Dir == "":
		return fmt.Errorf("checkpoint: Config.Dir is empty")
	case c.Keep < 1:
		return fmt.Errorf("checkpoint: Config.Keep %d: must keep at least 1", c.Keep)
	case math.IsNaN(c.Share):
		return fmt.Errorf("checkpoint: Config.Share is NaN")
	}
	return nil
}

// Result describes a finished checkpoint.
type Result struct {
	Seq       uint64        // seq of the snapshot
	Bytes     int64         // size of the snapshot file
	Path      string        // the snapshot file
	Time      time.Time     // when the state was captured (Meta.Time)
	Capture   time.Duration // time spent in Config.Capture
	Duration  time.Duration // capture to prune, the whole checkpoint
	Truncated uint64        // the log holds no record before this seq
	// Skipped is set when no event was applied since the snapshot this
	// Checkpointer last wrote: that file was kept, not written again.
	Skipped bool
}

// Checkpointer takes checkpoints on a goroutine of its own, one at a time:
// after Interval, when the log reaches WALBytes, and on request. A
// checkpoint captures the state (Config.Capture, one atomic load), reads the
// log's processed seq P on its own, writes the snapshot of seq S durably
// (Write), then truncates the log before min(S, P)+1 and prunes old
// snapshots. Nothing of it runs on, or locks against, the event loop.
//
// Why min(S, P)+1: records up to S are in the snapshot, so the log may drop
// them, and must keep every record after S. P bounds the cut from the other
// side: the log drops only what the event loop has consumed, and the cut
// never passes the log's next seq (TruncateBefore beyond it would move the
// next seq up, which only a restore may do). When the root was published
// before P was advanced, the few records between P and S stay in the log;
// recovery replays them onto the snapshot as no-ops (seq <= snapshot seq).
type Checkpointer struct {
	cfg  Config
	wake chan struct{} // cap 1: a run is wanted
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the loop has returned

	// mu guards the fields in it. Lock order: mu is a leaf; it is never
	// held while calling out (Capture, hooks, the FS, the log).
	mu struct {
		sync.Mutex
		next    *round // the run the next checkpoint serves; nil when none asked
		last    Result
		hasLast bool
		closed  bool
	}

	// Owned by the loop goroutine.
	written   Info   // the snapshot this Checkpointer last wrote
	truncated uint64 // the log was last truncated before this seq

	// onRequest, set by tests before any request, runs once a Checkpoint
	// call has joined the next run.
	onRequest func()
	// onPace, set by tests before any request, sees each run's pacer.
	onPace func(*pacer)
}

// round is one run as seen by the Checkpoint callers waiting on it.
type round struct {
	done chan struct{} // closed when res and err are set
	res  Result
	err  error
}

// Start validates cfg, fills its defaults and starts the background
// goroutine. It panics on a missing Capture, Log or Dir: a wiring error.
func Start(cfg Config) *Checkpointer {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	c := &Checkpointer{
		cfg:  cfg,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.loop()
	return c
}

// Checkpoint asks for a checkpoint and waits for it: one that starts after
// this call, so that it holds every event applied before it. Concurrent
// requests made while a checkpoint runs share the next one. It returns when
// the snapshot is durable and the log truncated, or when ctx ends (the
// checkpoint itself goes on), or ErrClosed.
func (c *Checkpointer) Checkpoint(ctx context.Context) (Result, error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return Result{}, ErrClosed
	}
	if c.mu.next == nil {
		c.mu.next = &round{done: make(chan struct{})}
	}
	r := c.mu.next
	// NB: joined and woken under one lock, so that the run taking r also
	// takes this wake-up (see run) and no spurious run follows.
	c.Trigger()
	c.mu.Unlock()
	if c.onRequest != nil {
		c.onRequest()
	}

	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Trigger asks for a checkpoint without waiting. Triggers made while one
// runs lead to one more run after it.
func (c *Checkpointer) Trigger() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Last returns the last successful checkpoint that wrote its snapshot (or
// the first that kept it), if any.
func (c *Checkpointer) Last() (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.last, c.mu.hasLast
}

// Close stops the goroutine once the checkpoint in progress, if any, has
// ended; requests still waiting get ErrClosed. It takes no checkpoint of
// its own: a daemon that wants a final one calls Checkpoint first.
func (c *Checkpointer) Close() error {
	c.mu.Lock()
	closed := c.mu.closed
	c.mu.closed = true
	c.mu.Unlock()
	if !closed {
		close(c.stop)
	}
	<-c.done
	return nil
}

func (c *Checkpointer) loop() {
	defer close(c.done)

	var timer <-chan time.Time
	var t *time.Timer
	if c.cfg.Interval > 0 {
		t = time.NewTimer(c.cfg.Interval)
		defer t.Stop()
		timer = t.C
	}
	var poll <-chan time.Time
	if c.cfg.WALBytes > 0 {
		p := time.NewTicker(c.cfg.Poll)
		defer p.Stop()
		poll = p.C
	}

	sizeArmed := true
	for {
		// NB: checked alone first, so that a Close racing a request ends
		// the loop rather than starting one more run.
		select {
		case <-c.stop:
			c.failPending()
			return
		default:
		}
		select {
		case <-c.stop:
			c.failPending()
			return
		case <-c.wake:
		case <-timer:
		case <-poll:
			if !sizeArmed || c.cfg.Log.Size() < c.cfg.WALBytes {
				continue
			}
		}

		sizeArmed = c.run() == nil
		if t != nil {
			t.Reset(c.cfg.Interval)
		}
	}
}

// failPending answers the requests still waiting with ErrClosed.
func (c *Checkpointer) failPending() {
	c.mu.Lock()
	r := c.mu.next
	c.mu.next = nil
	c.mu.Unlock()
	if r != nil {
		r.err = ErrClosed
		close(r.done)
	}
}

// run takes one checkpoint, reports it and answers the requests it serves.
func (c *Checkpointer) run() error {
	// Every request and trigger made so far is served by this run, which
	// starts after them: take their round and their pending wake-up.
	c.mu.Lock()
	r := c.mu.next
	c.mu.next = nil
	select {
	case <-c.wake:
	default:
	}
	c.mu.Unlock()

	res, err := c.checkpoint()
	if err != nil {
		if c.cfg.OnError != nil {
			c.cfg.OnError(err)
		}
	} else {
		c.mu.Lock()
		// Last stays the checkpoint that wrote the file a skipped one
		// kept, with its time, size and duration.
		if !res.Skipped || !c.mu.hasLast || c.mu.last.Seq != res.Seq {
			c.mu.last, c.mu.hasLast = res, true
		}
		c.mu.Unlock()
		if c.cfg.OnDone != nil {
			c.cfg.OnDone(res)
		}
	}

	if r != nil {
		r.res, r.err = res, err
		close(r.done)
	}
	return err
}

// loopBusy returns the pacer's busy: whether the log's processed seq moved
// since the last call (the first call compares with from).
func (c *Checkpointer) loopBusy(from uint64) func() bool {
	last := from
	return func() bool {
		cur := c.cfg.Log.Processed()
		moved := cur != last
		last = cur
		return moved
	}
}

// checkpoint captures, writes, truncates and prunes. On error the log is
// truncated only if the snapshot it returns with is durable.
func (c *Checkpointer) checkpoint() (Result, error) {
	start := time.Now()
	cp := c.cfg.Capture()
	res := Result{Capture: time.Since(start)}
	// Read after the capture: P may then pass S, and min(S, P) takes S.
	processed := c.cfg.Log.Processed()

	meta := cp.Meta
	if cp.Counts != nil {
		meta.Counts = cp.Counts()
	}
	if meta.Time.IsZero() {
		meta.Time = start
	}
	res.Seq, res.Time = meta.Seq, meta.Time

	if c.written.Path != "" && c.written.Seq == meta.Seq {
		res.Path, res.Bytes, res.Skipped = c.written.Path, c.written.Bytes, true
	} else {
		p := newPacer(nil, c.cfg.Share, c.loopBusy(processed))
		if c.onPace != nil {
			c.onPace(p)
		}
		info, err := write(c.cfg.FS, c.cfg.Dir, meta, cp.Encode, p)
		if err != nil {
			return Result{}, err
		}
		c.written = info
		res.Path, res.Bytes = info.Path, info.Bytes
	}

	// Only now is the snapshot durable: the log may lose what it holds.
	cut := min(meta.Seq, processed) + 1
	if cut > c.truncated {
		if err := c.cfg.Log.TruncateBefore(cut); err != nil {
			return Result{}, fmt.Errorf("checkpoint: truncate the log before seq %d: %w",
				cut, err)
		}
		c.truncated = cut
	}
	res.Truncated = c.truncated

	if err := Prune(c.cfg.FS, c.cfg.Dir, c.cfg.Keep); err != nil {
		return Result{}, err
	}
	res.Duration = time.Since(start)
	return res, nil
}
