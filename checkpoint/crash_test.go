package checkpoint

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

// The crash tests run one checkpoint (old snapshot at seq 10, state and
// log at seq 20, Keep 1) on a Mem whose log truncation is itself durable on
// that Mem (fakeLog.fs), and stop it at every filesystem operation in turn:
// by a crash (a clone of what was durable just before the operation) or by
// a fault (the operation fails). After each, recovery must find a sound
// snapshot that the log covers, and so reach seq 20 again.

const (
	crashOld   = 10
	crashNew   = 20
	crashBytes = 300_000
)

// crashBody is the state at seq: incompressible, so that the snapshot
// takes several chunks and a crash can fall inside the file.
func crashBody(seq uint64) []byte {
	b := randomBytes(crashBytes)
	b[0] = byte(seq)
	return b
}

// crashSetup returns a Mem with the old snapshot durable, a log that starts
// at seq 1, and a Checkpointer about to checkpoint seq 20.
func crashSetup(t *testing.T) (*vfs.Mem, *fakeLog, *Checkpointer) {
	t.Helper()
	m := newMem(t)
	if _, err := Write(m, snapDir, testMeta(crashOld),
		writeBody(crashBody(crashOld))); err != nil {
		t.Fatal(err)
	}
	log := &fakeLog{fs: m}
	log.processed.Store(crashNew)
	pub := &publisher{}
	pub.root.Store(&state{seq: crashNew, body: crashBody(crashNew)})
	c := Start(Config{FS: m, Dir: snapDir, Keep: 1, Interval: -1, WALBytes: -1,
		Capture: pub.capture, Log: log})
	return m, log, c
}

// recoverFrom runs what the daemon does at start on fsys and checks that it
// reaches seq 20: a sound snapshot, covered by the log, no damage.
func recoverFrom(t *testing.T, fsys *vfs.Mem, step string) uint64 {
	t.Helper()
	if err := RemoveTemp(fsys, snapDir); err != nil {
		t.Fatalf("%s: RemoveTemp: %v", step, err)
	}
	first := logFirst(t, fsys)
	var l loaded
	used, damaged, err := Load(fsys, snapDir, coversFrom(first), l.fn)
	if err != nil || len(damaged) != 0 {
		t.Fatalf("%s: Load: %v, damaged %v", step, err, damaged)
	}
	if used.Seq != crashOld && used.Seq != crashNew {
		t.Fatalf("%s: recovered from seq %d", step, used.Seq)
	}
	if string(l.body) != string(crashBody(used.Seq)) {
		t.Fatalf("%s: snapshot %d holds another body", step, used.Seq)
	}
	// The log replays first..20 onto the snapshot: no gap allowed.
	if first > used.Seq+1 {
		t.Fatalf("%s: snapshot %d, log from %d: a gap", step, used.Seq, first)
	}
	names, _ := fsys.List(snapDir)
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			t.Fatalf("%s: %s left after RemoveTemp", step, name)
		}
	}
	return used.Seq
}

// countOps runs the checkpoint once and returns how many operations it
// made on the Mem.
func countOps(t *testing.T) int {
	m, _, c := crashSetup(t)
	defer c.Close()
	before := m.Ops()
	if _, err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	return int(m.Ops() - before)
}

func TestCrashAtEachStep(t *testing.T) {
	withSyncEvery(t, 64<<10) // fsyncs inside the file are steps too
	n := countOps(t)
	t.Logf("a checkpoint makes %d operations", n)
	sawOld, sawNew := false, false
	for k := 0; k <= n; k++ {
		m, log, c := crashSetup(t)
		var mu sync.Mutex
		var crashed *vfs.Mem
		var crashOp string
		i := 0
		m.SetOnOp(func(op vfs.Op, p string) error {
			mu.Lock()
			defer mu.Unlock()
			if i == k {
				crashed, crashOp = m.Crash(), op.String()+" "+p
			}
			i++
			return nil
		})
		_, err := c.Checkpoint(context.Background())
		c.Close()
		m.SetOnOp(nil)
		if err != nil {
			t.Fatalf("crash before op %d: checkpoint: %v", k, err)
		}
		if crashed == nil {
			crashed, crashOp = m.Crash(), "the end"
		}

		step := "crash before " + crashOp
		switch recoverFrom(t, crashed, step) {
		case crashOld:
			sawOld = true
		case crashNew:
			sawNew = true
		}
		if len(log.calls()) != 1 {
			t.Fatalf("%s: TruncateBefore calls %v", step, log.calls())
		}
	}
	if !sawOld || !sawNew {
		t.Fatalf("crashes recovered old %v, new %v: want both", sawOld, sawNew)
	}
}

// TestFaultAtEachStep fails each operation in turn with EIO. Whatever the
// checkpoint answers, the live files and a crash clone of them recover,
// and the log was truncated only if the new snapshot was durable.
func TestFaultAtEachStep(t *testing.T) {
	withSyncEvery(t, 64<<10)
	n := countOps(t)
	failures := 0
	for k := 0; k < n; k++ {
		m, log, c := crashSetup(t)
		var mu sync.Mutex
		i := 0
		var faultOp string
		m.SetOnOp(func(op vfs.Op, p string) error {
			mu.Lock()
			defer mu.Unlock()
			i++
			if i-1 == k {
				faultOp = op.String() + " " + p
				return syscall.EIO
			}
			return nil
		})
		res, err := c.Checkpoint(context.Background())
		c.Close()
		m.SetOnOp(nil)
		step := "EIO on " + faultOp

		if err != nil {
			failures++
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("%s: got %v", step, err)
			}
		} else if res.Seq != crashNew {
			t.Fatalf("%s: result %+v", step, res)
		}

		// Truncated only after the snapshot was durable.
		if len(log.calls()) > 0 {
			var l loaded
			if err := Read(m.Crash(), snapDir+"/"+fileName(crashNew), l.fn); err != nil {
				t.Fatalf("%s: log truncated, but the snapshot is not durable: %v", step, err)
			}
		}
		recoverFrom(t, m.Crash(), step+", then a crash")
		recoverFrom(t, m, step)
	}
	if failures == 0 {
		t.Fatal("no fault failed the checkpoint")
	}
}

// TestCrashLeavesDamagedNewest: the newest snapshot is found damaged after
// a crash between its write and the truncation; recovery falls back to the
// older one, which the log still covers.
func TestCrashLeavesDamagedNewest(t *testing.T) {
	m, log, c := crashSetup(t)
	var crashed *vfs.Mem
	log.mu.Lock()
	log.mu.hook = func(uint64) error {
		crashed = m.Crash()
		return nil
	}
	log.mu.Unlock()
	if _, err := c.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()

	damage(t, crashed, snapDir+"/"+fileName(crashNew), 5000)
	var l loaded
	used, damaged, err := Load(crashed, snapDir, coversFrom(logFirst(t, crashed)), l.fn)
	if err != nil || used.Seq != crashOld || len(damaged) != 1 {
		t.Fatalf("Load: %+v, %v, damaged %v", used, err, damaged)
	}
	if l.meta.Seq != crashOld || string(l.body) != string(crashBody(crashOld)) {
		t.Fatal("fn holds another state")
	}
}
