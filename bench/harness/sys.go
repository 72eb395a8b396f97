package harness

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/pstate/pstate/internal/workload"
)

// System is one store the harness drives. Submit and Read are called from
// many goroutines at once; the others from one.
type System interface {
	// Name is the column the system's numbers go in.
	Name() string
	// Load bulk-loads ls (not measured) and leaves the result durable.
	Load(ctx context.Context, ls *LoadSet) error
	// Submit writes one batch as one transaction and returns once it is
	// durable.
	Submit(ctx context.Context, batch []workload.Event) error
	// Read reads one job with its steps, attempts and workspace ids.
	Read(ctx context.Context, jobID string) error
	// Checkpoint takes one checkpoint (the system's own kind) and returns
	// once it is done.
	Checkpoint(ctx context.Context) error
	// Footprint reports the memory the system holds for its state (-1 when
	// the harness measures the Go heap instead, 0 when there is no
	// meaningful number) and its bytes on disk.
	Footprint() (mem, disk int64, err error)
	// Recover stops the system as a crash would (or closes it, where the
	// system has no way to crash in-process), starts it again from its
	// files and returns once it answers a first query; the system stays
	// usable. firstJob names a job the first query reads.
	Recover(ctx context.Context, firstJob string) (time.Duration, error)
	// Close stops the system and frees what it holds; it is called once,
	// whatever happened before.
	Close() error
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
