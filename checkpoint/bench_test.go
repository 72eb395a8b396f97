package checkpoint

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/pstate/pstate/wal/vfs"
)

// The benchmarks measure the snapshot format on a synthetic state that
// looks like the daemon's: jobs of 20 steps, each step with one attempt or
// a retry, written as JSON-like records one job at a time. The daemon's own
// encoder lives in package pstate; its benchmarks measure the real thing.

var stepNames = [20]string{
	"checkout", "fetch-deps", "configure", "generate", "compile", "link",
	"unit-test", "integration-test", "lint", "vet", "package", "sign",
	"upload-artifacts", "build-image", "push-image", "deploy-staging",
	"smoke-test", "deploy-prod", "notify", "cleanup",
}

var teams = []string{"infra", "payments", "search", "mobile", "data", "ml"}

// syntheticJobs returns n job records, deterministic for a given n.
func syntheticJobs(n int) [][]byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	t0 := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	ts := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	jobs := make([][]byte, n)
	var b bytes.Buffer
	for i := range n {
		b.Reset()
		at := t0.Add(time.Duration(i)*137*time.Millisecond +
			time.Duration(r.IntN(1e6))*time.Microsecond)
		fmt.Fprintf(&b, `{"job_id":"job-%08d","name":"build-%s-%d","labels":{"team":%q,`+
			`"queue":"q-%d","priority":"%d","commit":"%016x"},"state":"succeeded",`+
			`"submitted_at":%q,"steps":[`, i, teams[i%len(teams)], r.IntN(5000),
			teams[r.IntN(len(teams))], r.IntN(8), r.IntN(4), r.Uint64(), ts(at))
		for s, name := range stepNames {
			if s > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":%q,"attempts":[`, name)
			attempts := 1
			if r.IntN(10) == 0 {
				attempts = 2
			}
			for a := 1; a <= attempts; a++ {
				start := at.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
				at = start.Add(time.Duration(r.IntN(90_000)) * time.Millisecond)
				status, code := "succeeded", 0
				if a < attempts {
					status, code = "failed", 1+r.IntN(120)
				}
				if a > 1 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"attempt":%d,"status":%q,"started_at":%q,`+
					`"finished_at":%q,"exit_code":%d}`, a, status, ts(start), ts(at), code)
			}
			b.WriteString("]}")
		}
		fmt.Fprintf(&b, `],"workspaces":["ws-%08d"],"finished_at":%q}`+"\n", i, ts(at))
		jobs[i] = bytes.Clone(b.Bytes())
	}
	return jobs
}

const benchJobs = 5000

var benchState = syntheticJobs(benchJobs)

func encodeJobs(jobs [][]byte) func(w io.Writer) error {
	return func(w io.Writer) error {
		for _, j := range jobs {
			if _, err := w.Write(j); err != nil {
				return err
			}
		}
		return nil
	}
}

func rawSize(jobs [][]byte) int64 {
	var n int64
	for _, j := range jobs {
		n += int64(len(j))
	}
	return n
}

var benchLevels = []struct {
	name  string
	level zstd.EncoderLevel
}{
	{"fastest", zstd.SpeedFastest},
	{"default", zstd.SpeedDefault},
}

// withLevel runs fn with the encoder at level.
func withLevel(level zstd.EncoderLevel, fn func()) {
	saved := encoderLevel
	encoderLevel = level
	defer func() { encoderLevel = saved }()
	fn()
}

// cpuTime is the CPU time (user and system) the process has used. The
// benchmarks report MB per CPU second beside MB/s: on a machine shared
// with other work, wall time measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports MB of state per CPU second over b's loop.
func reportCPU(b *testing.B, raw int64, start time.Duration) {
	if d := cpuTime() - start; d > 0 {
		b.ReportMetric(float64(raw)*float64(b.N)/1e6/d.Seconds(), "MB/cpu-s")
	}
}

// BenchmarkEncode: compression speed (MB/s of state) and ratio, no disk.
func BenchmarkEncode(b *testing.B) {
	raw := rawSize(benchState)
	for _, l := range benchLevels {
		b.Run(l.name, func(b *testing.B) {
			withLevel(l.level, func() {
				b.SetBytes(raw)
				var n int64
				cpu := cpuTime()
				for b.Loop() {
					var err error
					n, err = Encode(io.Discard, testMeta(1), encodeJobs(benchState))
					if err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, raw, cpu)
				b.ReportMetric(float64(raw)/float64(n), "ratio")
				b.ReportMetric(float64(n)/float64(benchJobs), "B/job")
			})
		})
	}
}

// BenchmarkWrite: a whole snapshot file on the real disk, fsync and rename
// included (MB/s of state).
func BenchmarkWrite(b *testing.B) {
	raw := rawSize(benchState)
	dir := b.TempDir()
	for _, l := range benchLevels {
		b.Run(l.name, func(b *testing.B) {
			withLevel(l.level, func() {
				b.SetBytes(raw)
				var info Info
				seq := uint64(0)
				cpu := cpuTime()
				for b.Loop() {
					seq++
					var err error
					info, err = Write(vfs.OS, dir, testMeta(seq), encodeJobs(benchState))
					if err != nil {
						b.Fatal(err)
					}
					if err := Prune(vfs.OS, dir, 1); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, raw, cpu)
				b.ReportMetric(float64(info.Bytes)/1e6, "MB-file")
			})
		})
	}
}

// BenchmarkDecode: decompression and every checksum (MB/s of decoded
// state).
func BenchmarkDecode(b *testing.B) {
	raw := rawSize(benchState)
	for _, l := range benchLevels {
		b.Run(l.name, func(b *testing.B) {
			var data []byte
			withLevel(l.level, func() {
				var buf bytes.Buffer
				if _, err := Encode(&buf, testMeta(1), encodeJobs(benchState)); err != nil {
					b.Fatal(err)
				}
				data = buf.Bytes()
			})
			b.SetBytes(raw)
			buf := make([]byte, 64<<10)
			cpu := cpuTime()
			for b.Loop() {
				err := Decode(bytes.NewReader(data), func(_ Meta, body io.Reader) error {
					_, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, body, buf)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, raw, cpu)
		})
	}
}

// TestSyntheticJobs keeps the benchmark's state honest: 20 steps a job.
func TestSyntheticJobs(t *testing.T) {
	jobs := syntheticJobs(10)
	for _, j := range jobs {
		if n := strings.Count(string(j), `"attempts":[`); n != 20 {
			t.Fatalf("a job with %d steps: %s", n, j)
		}
	}
}
