package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/pstate/pstate/bench/baseline"
	"github.com/pstate/pstate/internal/workload"
)

// baselineSys is the engine pstate replaces (bench/baseline).
type baselineSys struct {
	dir string
	eng *baseline.Engine
}

func newBaseline(dir string) *baselineSys { return &baselineSys{dir: dir} }

func (b *baselineSys) Name() string { return "baseline" }

func (b *baselineSys) Load(ctx context.Context, ls *LoadSet) error {
	eng, err := baseline.Open(b.dir, baseline.Options{})
	if err != nil {
		return err
	}
	b.eng = eng
	if err := eng.Import(ls.Jobs, ls.Workspaces, ls.Records); err != nil {
		return err
	}
	_, err = eng.Checkpoint()
	return err
}

func (b *baselineSys) Submit(ctx context.Context, batch []workload.Event) error {
	_, err := b.eng.Submit(batch)
	return err
}

func (b *baselineSys) Read(ctx context.Context, jobID string) error {
	b.eng.Job(jobID)
	return nil
}

func (b *baselineSys) Checkpoint(ctx context.Context) error {
	_, err := b.eng.Checkpoint()
	return err
}

func (b *baselineSys) Footprint() (int64, int64, error) { return -1, dirSize(b.dir), nil }

// Recover closes the engine without a checkpoint and opens it again: its
// snapshot, then its log.
func (b *baselineSys) Recover(ctx context.Context, firstJob string) (time.Duration, error) {
	if err := b.eng.Close(); err != nil {
		return 0, err
	}
	b.eng = nil
	start := time.Now()
	eng, err := baseline.Open(b.dir, baseline.Options{})
	if err != nil {
		return 0, err
	}
	b.eng = eng
	if _, ok := eng.Job(firstJob); !ok {
		return 0, fmt.Errorf("recover: job %s missing", firstJob)
	}
	return time.Since(start), nil
}

func (b *baselineSys) Close() error {
	if b.eng == nil {
		return nil
	}
	err := b.eng.Close()
	b.eng = nil
	return err
}
