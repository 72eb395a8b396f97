package pstate

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memLog is an in-memory Log with the wal's semantics: Write assigns
// consecutive seqs and keeps copies; WaitDurable returns once the test has
// synced up to the seq (or at once when auto is set); a failure fails every
// waiter and every later Write.
type memLog struct {
	mu      sync.Mutex
	cond    *sync.Cond
	next    uint64   // seq the next Write gets
	records [][]byte // records[i] has seq base+i
	base    uint64
	durable uint64
	auto    bool  // every write is durable at once
	err     error // failure: Write and WaitDurable fail
	writes  chan uint64

	processed atomic.Uint64
}

func newMemLog(next uint64, auto bool) *memLog {
	l := &memLog{next: next, base: next, durable: next - 1, auto: auto}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *memLog) Write(payloads [][]byte) (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, 0, l.err
	}
	first := l.next
	for _, p := range payloads {
		l.records = append(l.records, append([]byte(nil), p...))
	}
	l.next += uint64(len(payloads))
	last := l.next - 1
	if l.auto {
		l.durable = last
	}
	if l.writes != nil {
		l.writes <- last
	}
	return first, last, nil
}

func (l *memLog) WaitDurable(seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.durable < seq && l.err == nil {
		l.cond.Wait()
	}
	if l.durable >= seq {
		return nil
	}
	return l.err
}

func (l *memLog) SetProcessed(seq uint64) { l.processed.Store(seq) }

// sync makes every record written so far durable.
func (l *memLog) sync() {
	l.mu.Lock()
	l.durable = l.next - 1
	l.mu.Unlock()
	l.cond.Broadcast()
}

// failSync fails the records not yet durable, for good.
func (l *memLog) failSync(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	l.cond.Broadcast()
}

// all returns copies of the records with their seqs.
func (l *memLog) all() (base uint64, recs [][]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.base, append([][]byte(nil), l.records...)
}

var errDisk = errors.New("disk on fire")

// nopLog accepts everything at once: for benchmarks.
type nopLog struct {
	mu   sync.Mutex
	next uint64
}

func (l *nopLog) Write(p [][]byte) (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next
	l.next += uint64(len(p))
	return first, l.next - 1, nil
}

func (l *nopLog) WaitDurable(uint64) error { return nil }
func (l *nopLog) SetProcessed(uint64)      {}

// tb is what the shared test functions need; *testing.T, B, F and *rapid.T
// have it.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}
