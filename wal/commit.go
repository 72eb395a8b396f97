package wal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// committer runs the flusher: one goroutine that fdatasyncs the log for
// every waiter at once (group commit). A round takes the waiting group,
// syncs everything written so far and wakes the group together with one
// result. A waiter whose record the round in flight already covers joins
// that round; any other joins the next one. Without that, a record written
// just before a round began would wait for that round and the next.
type committer struct {
	l       *Log
	running bool
	kickc   chan struct{}
	stopc   chan struct{}
	done    chan struct{}

	// mu guards next, inflight and stopped. It is a leaf: nothing else
	// is taken while it is held.
	mu       sync.Mutex
	next     *group
	inflight *group // the round syncing now, or nil
	stopped  bool

	onJoin func(inflight bool) // tests: a waiter joined a group
}

// group is the set of waiters of one sync round. covers is set when the
// round begins: every record up to it was written before, so the round
// makes it durable. err is written before done is closed and read only
// after.
type group struct {
	done   chan struct{}
	covers uint64
	err    error
}

func newGroup() *group { return &group{done: make(chan struct{})} }

// start launches the flusher unless the mode never syncs.
func (c *committer) start(l *Log) {
	c.l = l
	c.next = newGroup()
	if l.opts.Sync == SyncNone {
		return
	}
	c.running = true
	c.kickc = make(chan struct{}, 1)
	c.stopc = make(chan struct{})
	c.done = make(chan struct{})
	go c.loop()
}

// kick asks for a round under SyncAlways. It never blocks.
func (c *committer) kick() {
	if !c.running || c.l.opts.Sync != SyncAlways {
		return
	}
	select {
	case c.kickc <- struct{}{}:
	default:
	}
}

// wait joins the round in flight when it covers seq, or else the next
// round's group, and returns that round's result.
func (c *committer) wait(seq uint64) error {
	c.mu.Lock()
	if c.stopped || !c.running {
		c.mu.Unlock()
		return ErrClosed
	}
	g, joined := c.next, false
	if f := c.inflight; f != nil && seq <= f.covers {
		g, joined = f, true
	}
	c.mu.Unlock()
	if c.onJoin != nil {
		c.onJoin(joined)
	}
	if !joined {
		c.kick()
	}
	<-g.done
	return g.err
}

// stop runs a last round, answers the waiters left and ends the flusher.
func (c *committer) stop() {
	if !c.running {
		return
	}
	close(c.stopc)
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	var tick <-chan time.Time
	if c.l.opts.Sync == SyncInterval {
		t := time.NewTicker(c.l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.kickc:
		case <-tick:
		case <-c.stopc:
			c.round()
			c.mu.Lock()
			c.stopped = true
			g := c.next
			c.mu.Unlock()
			g.err = ErrClosed
			close(g.done)
			return
		}
		c.round()
	}
}

// round takes the waiting group, syncs and wakes it. The seq it covers is
// read before the round takes its group, so the sync, which covers
// whatever is written when it starts, covers at least that much.
func (c *committer) round() {
	covers := c.l.written.Load()
	c.mu.Lock()
	g := c.next
	g.covers = covers
	c.inflight = g
	c.next = newGroup()
	c.mu.Unlock()

	g.err = c.l.syncRound()
	c.mu.Lock()
	c.inflight = nil
	c.mu.Unlock()
	close(g.done)
}

// syncRound fdatasyncs every record written so far, in the file that holds
// it: the log file, plus during a truncation the new file, plus after the
// new file was renamed over the log the directory. Only then does it move
// the durable seq. After a failed fsync it never syncs again.
func (l *Log) syncRound() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if l.syncFailed.Load() {
		return l.Err()
	}

	l.mu.Lock()
	target := l.written.Load()
	f := l.w.f
	dual := l.w.dual
	gen := l.w.dirGen
	l.mu.Unlock()
	if target <= l.durable.Load() && gen <= l.dirSyncedGen() {
		return nil
	}

	start := time.Now()
	err := f.Sync()
	if err == nil && dual != nil {
		err = dual.Sync()
	}
	if l.opts.OnSync != nil {
		l.opts.OnSync(time.Since(start), err)
	}
	if err == nil {
		err = l.syncDir(gen)
	}
	if err != nil {
		return l.failSync(fmt.Errorf("sync log: %w", err))
	}
	storeMax(&l.durable, target)
	return nil
}

// syncDir fsyncs the log's directory unless a sync already covered rename
// generation gen. NB: dirMu is not held across the fsync, so the flusher
// and a truncation may both fsync the directory; that is harmless.
func (l *Log) syncDir(gen uint64) error {
	if l.dirSyncedGen() >= gen {
		return nil
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	l.dirMu.Lock()
	l.dirSynced = max(l.dirSynced, gen)
	l.dirMu.Unlock()
	return nil
}

func (l *Log) dirSyncedGen() uint64 {
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	return l.dirSynced
}

// storeMax raises v to x unless it is already higher.
func storeMax(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if cur >= x || v.CompareAndSwap(cur, x) {
			return
		}
	}
}
