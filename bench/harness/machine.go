package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs     int     `json:"nproc"`
	CPU      string  `json:"cpu"`
	MemoryGB float64 `json:"memory_gib"`
	Disk     string  `json:"disk"`
	Kernel   string  `json:"kernel"`
	Go       string  `json:"go"`
	Load     string  `json:"loadavg_at_start"`
}

func describeMachine(dir string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	m.CPU = firstMatch("/proc/cpuinfo", "model name")
	if kb := firstMatch("/proc/meminfo", "MemTotal"); kb != "" {
		var n float64
		fmt.Sscanf(kb, "%f", &n)
		m.MemoryGB = float64(int(n/1024/1024*10)) / 10
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if out, err := exec.Command("df", "-hT", dir).Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if f := strings.Fields(lines[len(lines)-1]); len(f) >= 3 {
			m.Disk = fmt.Sprintf("%s (%s, %s)", f[0], f[1], f[2])
			dev := filepath.Base(f[0])
			if b, err := os.ReadFile("/sys/block/" + dev + "/queue/rotational"); err == nil {
				if strings.TrimSpace(string(b)) == "0" {
					m.Disk += ", non-rotational"
				} else {
					m.Disk += ", rotational"
				}
			}
		}
	}
	return m
}

func firstMatch(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Disk is the physical limit measured in the run's own directory.
type Disk struct {
	SyncsPerSec     float64 // appends of one small record, each fdatasync'd
	OverwritePerSec float64 // rewrites of one block in place, each fdatasync'd
	SyncedMBps      float64 // 1 MiB appends, each fdatasync'd
}

// measureDisk writes to a file in dir for d per measure: small appends
// each followed by fdatasync (the rate a one-writer log that grows its
// file can reach: each sync also commits the new size), 1 MiB appends each
// followed by fdatasync (the bandwidth of synced writes), and one 4 KiB
// block rewritten in place, each followed by fdatasync (no size change, as
// a preallocated or reused file, like SQLite's WAL, sees).
func measureDisk(dir string, d time.Duration) (Disk, error) {
	var out Disk
	small, err := syncLoop(dir, 128, d)
	if err != nil {
		return out, err
	}
	big, err := syncLoop(dir, 1<<20, d)
	if err != nil {
		return out, err
	}
	over, err := overwriteLoop(dir, d)
	if err != nil {
		return out, err
	}
	out.SyncsPerSec, out.OverwritePerSec = small.ops, over.ops
	out.SyncedMBps = big.ops * 1 // one MiB per op
	return out, nil
}

type loopResult struct{ ops float64 }

func syncLoop(dir string, size int, d time.Duration) (loopResult, error) {
	f, err := os.CreateTemp(dir, "disk-*.tmp")
	if err != nil {
		return loopResult{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(buf); err != nil {
			return loopResult{}, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return loopResult{}, err
		}
		n++
	}
	return loopResult{ops: float64(n) / time.Since(start).Seconds()}, nil
}

func overwriteLoop(dir string, d time.Duration) (loopResult, error) {
	f, err := os.CreateTemp(dir, "disk-*.tmp")
	if err != nil {
		return loopResult{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.Write(buf); err != nil {
		return loopResult{}, err
	}
	if err := f.Sync(); err != nil {
		return loopResult{}, err
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		buf[0] = byte(n)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return loopResult{}, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return loopResult{}, err
		}
		n++
	}
	return loopResult{ops: float64(n) / time.Since(start).Seconds()}, nil
}
