package checkpoint

import (
	"io"
	"runtime"
	"time"
)

// Pacing. Encoding and compressing a snapshot is a long stretch of pure CPU
// work on the checkpointer's goroutine: about 0.6 s of one core for 100k
// jobs, 6 s for 1M. On a small machine (two cores) that goroutine holds one
// of the two Ps of the Go scheduler the whole time. A goroutine made
// runnable behind it (the log's committer back from its fdatasync, the
// event loop, a writer being answered) then waits until the other P is
// free or until the runtime preempts the encoder, after 10 ms; and the
// kernel shares the cores between the encoder's thread and the loop's.
// Both showed as tail latency of writes during checkpoints.
//
// The pacer bounds both: the body passes through it in pieces of at most
// paceStep bytes, and once the work since the last pause reaches
// paceSlice it pauses. With a share below 1 it sleeps long enough that
// the encoding takes no more than that share of one core's time (the P
// and the core are free meanwhile); with a share of 1 or more it only
// yields the P (runtime.Gosched), so that what is queued behind it runs
// within about paceSlice instead of 10 ms. It sleeps only while the event
// loop is busy (busy reports that the log's processed seq moved since the
// last pause): a checkpoint of an idle daemon, at shutdown say, runs at
// full speed and only yields.

const (
	// paceStep bounds one write into the compressor, so that a body
	// written in large pieces still reaches a pause point often.
	paceStep = 32 << 10
	// paceSlice is the work between two pauses.
	paceSlice = time.Millisecond
	// defaultShare is Config.Share's default.
	defaultShare = 0.5
)

// pacer is the writer the body writes into: it passes the bytes to w,
// counts them and pauses as the share asks. newPacer(w, 0, nil) never
// pauses.
type pacer struct {
	w     io.Writer
	share float64 // of one core; >= 1: yield only; <= 0: never pause
	busy  func() bool
	since time.Time
	n     uint64 // bytes written through

	// now, sleep and yield are time.Now, time.Sleep and runtime.Gosched;
	// tests replace them.
	now   func() time.Time
	sleep func(time.Duration)
	yield func()
}

// newPacer returns a pacer for share. busy reports whether the event loop
// did work since it was last called; nil means always.
func newPacer(w io.Writer, share float64, busy func() bool) *pacer {
	return &pacer{w: w, share: share, busy: busy, since: time.Now(), now: time.Now,
		sleep: time.Sleep, yield: runtime.Gosched}
}

func (p *pacer) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		k := min(len(b), paceStep)
		n, err := p.w.Write(b[:k])
		written += n
		p.n += uint64(n)
		if err != nil {
			return written, err
		}
		b = b[k:]
		p.pause()
	}
	return written, nil
}

// pause pauses when paceSlice of work has passed since the last pause.
func (p *pacer) pause() {
	if p.share <= 0 {
		return
	}
	worked := p.now().Sub(p.since)
	if worked < paceSlice {
		return
	}
	if p.share >= 1 || (p.busy != nil && !p.busy()) {
		p.yield()
	} else {
		p.sleep(time.Duration(float64(worked) * (1 - p.share) / p.share))
	}
	p.since = p.now()
}

// rest tells the pacer that the time until now was spent waiting, not
// working (an fsync): it does not count towards the next pause.
func (p *pacer) rest() { p.since = p.now() }
