package wal

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pstate/pstate/wal/vfs"
)

// TestScanLiveLogWithZerosSeesNoDamage scans a running log whose file
// holds the zeros laid ahead of its records while a writer appends: the
// scan may see the log at any point of its history, but never damage. The
// writer's appends are placed before the scan's k-th read of the file with
// the OnOp hook.
func TestScanLiveLogWithZerosSeesNoDamage(t *testing.T) {
	for k := int32(1); k <= 5; k++ {
		for _, batch := range []int{1, 2, 40} {
			t.Run(fmt.Sprintf("read%d/batch%d", k, batch), func(t *testing.T) {
				scanWhileAppending(t, k, batch)
			})
		}
	}
}

func scanWhileAppending(t *testing.T, k int32, batch int) {
	m := vfs.NewMem()
	l := openMem(t, m, Options{Sync: SyncAlways})
	defer mustClose(t, l)
	appendN(t, l, 1)

	var reads atomic.Int32
	var inHook atomic.Bool
	m.SetOnOp(func(op vfs.Op, p string) error {
		if op != vfs.OpRead || !strings.HasSuffix(p, fileName) || inHook.Load() {
			return nil
		}
		if reads.Add(1) == k {
			inHook.Store(true)
			appendN(t, l, batch)
			inHook.Store(false)
		}
		return nil
	})
	info, err := Scan(m, testDir, nil)
	m.SetOnOp(nil)
	var ce *CorruptionError
	if errors.As(err, &ce) {
		t.Fatalf("scan of a live log reports damage: %v (info %+v)", err, info)
	}
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if info.TornOffset >= 0 {
		t.Fatalf("scan of a live log reports a torn tail: %+v", info)
	}
	if info.Records < 1 {
		t.Fatalf("scan found %d records, want at least the one written before it", info.Records)
	}
}
