package workload

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/pstate/pstate/pstate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memLog is a pstate.Log that keeps nothing and is durable at once.
type memLog struct {
	mu   sync.Mutex
	next uint64
}

func (l *memLog) Write(p [][]byte) (uint64, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next
	l.next += uint64(len(p))
	return first, l.next - 1, nil
}
func (l *memLog) WaitDurable(uint64) error { return nil }
func (l *memLog) SetProcessed(uint64)      {}

// TestStreamsPassPstate submits interleaved streams, one event at a time,
// to pstate's engine through the JSON the API decodes: every event must
// pass pstate.Validate, and no job may be left running.
func TestStreamsPassPstate(t *testing.T) {
	for _, cfg := range []Config{
		{Seed: 1},
		{Seed: 2, MinSteps: 20, MaxSteps: 20, FailRate: 0.3, CancelRate: 0.2, PurgeRate: 0.5},
		{Seed: 3, MinSteps: 1, MaxSteps: 3, MaxAttempts: 1, SkipRate: 0.3, ScratchRate: 1},
		{Seed: 4, FailRate: 0.3, RetryRate: 0.5, WorkspaceRate: 0.5, ReleaseRate: 0.5},
	} {
		g := gen(t, cfg)
		eng := pstate.Start(nil, &memLog{next: 1}, pstate.Options{})
		s := g.Stream(0, 200, 32)
		for e, ok := s.Next(); ok; e, ok = s.Next() {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := pstate.DecodeEvents(b)
			if err != nil {
				t.Fatalf("seed %d: %s does not decode: %v", cfg.Seed, b, err)
			}
			if _, err := eng.Submit(context.Background(), evs); err != nil {
				t.Fatalf("seed %d: %s refused: %v", cfg.Seed, b, err)
			}
		}
		c := eng.Root().Counts()
		eng.Close()
		if c.Jobs.Queued+c.Jobs.Running != 0 || c.Jobs.Succeeded == 0 {
			t.Errorf("seed %d: counts %+v", cfg.Seed, c)
		}
	}
}
