package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pstate/pstate/cmd/internal/netaddr"
)

// maxSteps bounds --steps, so that a job.submitted stays far below the
// request limit.
const maxSteps = 200

// loadConfig is what the flags of `pstatectl load` set.
type loadConfig struct {
	jobs        int
	concurrency int
	duration    time.Duration
	batch       int
	seed        uint64
	record      string
	runID       string
	every       time.Duration
	model       modelConfig
}

func runLoad(e *env, args []string) error {
	fs := newFlagSet(e, "load", "[flags]",
		"Drive the daemon with a realistic load: each client runs its own jobs\n"+
			"(5 to --steps steps, failing and retried attempts, failed, canceled and\n"+
			"purged jobs, workspaces) through their lifecycles, and the run ends with\n"+
			"events/s, requests/s and latency percentiles per request. Any failed\n"+
			"request is reported and makes the exit status 1.")
	var cf clientFlags
	cf.register(fs, e)
	remote := fs.Bool("allow-remote", false, "allow an --addr that is not a unix socket or loopback")
	cfg, err := loadFlags(fs, args)
	if err != nil {
		return err
	}
	// A load is a flood of writes: aimed at another machine only on purpose.
	if !*remote && !netaddr.IsLoopback(cf.addr) {
		return usagef(fs, "--addr %s is not a unix socket or loopback address "+
			"(pass --allow-remote to load it anyway)", cf.addr)
	}
	// The client gives the address and token; each load client then opens
	// a connection of its own (connSender).
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	fmt.Fprintf(e.stderr, "load: %s, %d clients, batch %d, duration %s, jobs %s, "+
		"run id %s\n", cf.addr, cfg.concurrency, cfg.batch, cfg.duration,
		jobsText(cfg.jobs), cfg.runID)
	newSender := func() sender { return newConnSender(c) }
	rep, err := runLoadClients(e.ctx, cfg, newSender, e.stderr)
	if err != nil {
		return err
	}
	rep.print(e.stdout)
	return rep.err()
}

// loadFlags parses the flags of load into a config.
func loadFlags(fs *flag.FlagSet, args []string) (*loadConfig, error) {
	cfg := &loadConfig{model: defaultModel}
	m := &cfg.model
	fs.IntVar(&cfg.jobs, "jobs", 0, "jobs to run in all; 0 runs until --duration")
	fs.IntVar(&m.MaxSteps, "steps", 50, "steps of a job at most (each job has 5 to N)")
	fs.IntVar(&cfg.concurrency, "concurrency", 64,
		"clients, each sending one request at a time")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Second,
		"stop after this long; 0 runs until --jobs are done")
	fs.IntVar(&cfg.batch, "batch", 100, "events per request (1 sends single events)")
	fs.Uint64Var(&cfg.seed, "seed", 1, "seed of the random choices")
	fs.StringVar(&cfg.record, "record", "",
		"append one NDJSON line per answered event to this file")
	fs.StringVar(&cfg.runID, "run-id", "",
		"prefix of every id (default: from the clock, unique per run)")
	fs.DurationVar(&cfg.every, "progress", 5*time.Second,
		"interval of the progress line on stderr; 0 for none")
	fs.Float64Var(&m.FailRate, "fail-rate", m.FailRate, "chance that a step attempt fails")
	fs.Float64Var(&m.RetryRate, "retry-rate", m.RetryRate,
		"chance that a failed attempt is retried (3 attempts at most)")
	fs.Float64Var(&m.CancelRate, "cancel-rate", m.CancelRate, "chance that a job is canceled midway")
	fs.Float64Var(&m.PurgeRate, "purge-rate", m.PurgeRate, "chance that a finished job is purged")
	if err := parseNoArgs(fs, args); err != nil {
		return nil, err
	}
	if err := cfg.check(fs); err != nil {
		return nil, err
	}
	if cfg.runID == "" {
		cfg.runID = "L" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return cfg, nil
}

// check validates the config.
func (cfg *loadConfig) check(fs *flag.FlagSet) error {
	m := &cfg.model
	switch {
	case cfg.jobs < 0:
		return usagef(fs, "--jobs must not be negative")
	case m.MaxSteps < m.MinSteps || m.MaxSteps > maxSteps:
		return usagef(fs, "--steps must be %d to %d, got %d", m.MinSteps, maxSteps, m.MaxSteps)
	case cfg.concurrency < 1 || cfg.concurrency > 4096:
		return usagef(fs, "--concurrency must be 1 to 4096, got %d", cfg.concurrency)
	case cfg.duration < 0:
		return usagef(fs, "--duration must not be negative")
	case cfg.jobs == 0 && cfg.duration == 0:
		return usagef(fs, "one of --jobs and --duration must bound the run")
	case cfg.batch < 1 || cfg.batch > maxBatchEvents:
		return usagef(fs, "--batch must be 1 to %d, got %d", maxBatchEvents, cfg.batch)
	case cfg.every < 0:
		return usagef(fs, "--progress must not be negative")
	case strings.ContainsAny(cfg.runID, "\"\\ \t\n") || len(cfg.runID) > 64:
		return usagef(fs, "--run-id must be at most 64 bytes without quotes, "+
			"backslashes or spaces")
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"fail-rate", m.FailRate}, {"retry-rate", m.RetryRate},
		{"cancel-rate", m.CancelRate}, {"purge-rate", m.PurgeRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			return usagef(fs, "--%s must be 0 to 1, got %v", r.name, r.v)
		}
	}
	if m.FailRate+m.SkipRate > 1 {
		m.SkipRate = 1 - m.FailRate
	}
	return nil
}

func jobsText(n int) string {
	if n == 0 {
		return "unbounded"
	}
	return strconv.Itoa(n)
}

// runLoadClients runs the clients, each with a sender of its own from
// newSender, to the end and gathers their numbers. It prints a progress
// line to progressW every cfg.every.
func runLoadClients(ctx context.Context, cfg *loadConfig, newSender func() sender,
	progressW io.Writer) (*loadReport, error) {
	var rec *recorder
	if cfg.record != "" {
		r, err := openRecorder(cfg.record)
		if err != nil {
			return nil, err
		}
		rec = r
	}
	stats := &loadStats{}
	clients := make([]*loadClient, cfg.concurrency)
	for i := range clients {
		clients[i] = newLoadClient(cfg, i, newSender(), rec, stats)
	}

	start := time.Now()
	var deadline time.Time
	if cfg.duration > 0 {
		deadline = start.Add(cfg.duration)
	}
	stopProgress := startProgress(stats, start, cfg.every, progressW)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(ctx, deadline) })
	}
	wg.Wait()
	stopProgress()
	elapsed := time.Since(start)

	rep := &loadReport{cfg: cfg, elapsed: elapsed, interrupted: ctx.Err() != nil}
	for _, c := range clients {
		rep.hist.merge(&c.hist)
		rep.active += len(c.active)
	}
	rep.take(stats)
	if rec != nil {
		rep.recordErr = rec.Close()
	}
	return rep, nil
}

// newLoadClient makes client i with its share of the jobs.
func newLoadClient(cfg *loadConfig, i int, snd sender, rec *recorder,
	stats *loadStats) *loadClient {
	quota := -1
	if cfg.jobs > 0 {
		quota = cfg.jobs / cfg.concurrency
		if i < cfg.jobs%cfg.concurrency {
			quota++
		}
	}
	return &loadClient{
		gen:    newGenerator(cfg.model, cfg.seed, cfg.runID, i),
		snd:    snd,
		rec:    rec,
		stats:  stats,
		batch:  cfg.batch,
		single: cfg.batch == 1,
		target: min(max(cfg.batch/4, 4), 64),
		quota:  quota,
	}
}

// startProgress prints a progress line every interval until the returned
// function is called (which waits for the printer to stop).
func startProgress(stats *loadStats, start time.Time, every time.Duration,
	w io.Writer) func() {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var lastEv, lastReq uint64
		last := start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				ev, req := stats.events.Load(), stats.requests.Load()
				dt := now.Sub(last).Seconds()
				fmt.Fprintf(w, "load: %4.0fs  %d events  %s events/s  %s requests/s  "+
					"%d failed\n", now.Sub(start).Seconds(), ev,
					fmtRate(float64(ev-lastEv)/dt), fmtRate(float64(req-lastReq)/dt),
					stats.failed.Load())
				lastEv, lastReq, last = ev, req, now
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// loadReport is the outcome of a load run.
type loadReport struct {
	cfg         *loadConfig
	elapsed     time.Duration
	interrupted bool
	hist        histogram
	events      uint64
	requests    uint64
	failed      uint64
	first       error
	kinds       map[string]int
	jobs        int
	dropped     int
	active      int
	recordErr   error
}

// take copies the shared counters once the clients stopped.
func (r *loadReport) take(s *loadStats) {
	r.events, r.requests, r.failed = s.events.Load(), s.requests.Load(), s.failed.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	r.first, r.kinds, r.jobs, r.dropped = s.first, s.kinds, s.jobs, s.dropped
}

// print writes the summary.
func (r *loadReport) print(w io.Writer) {
	secs := r.elapsed.Seconds()
	t := newTable(w)
	t.row("elapsed", fmt.Sprintf("%.2fs", secs))
	t.row("events", fmt.Sprintf("%d", r.events),
		fmt.Sprintf("%.0f events/s", float64(r.events)/secs))
	t.row("requests", fmt.Sprintf("%d", r.requests),
		fmt.Sprintf("%.0f requests/s", float64(r.requests)/secs))
	t.row("latency", fmt.Sprintf("p50 %s  p99 %s  p99.9 %s  max %s (per request)",
		fmtDur(r.hist.quantile(0.50)), fmtDur(r.hist.quantile(0.99)),
		fmtDur(r.hist.quantile(0.999)), fmtDur(r.hist.max)))
	t.row("jobs", fmt.Sprintf("%d done, %d active at the end, %d dropped",
		r.jobs, r.active, r.dropped))
	t.row("failed", fmt.Sprintf("%d requests", r.failed))
	t.flush()
	if r.interrupted {
		fmt.Fprintln(w, "interrupted")
	}
}

// err reports the failures: a correct workload has none.
func (r *loadReport) err() error {
	if r.failed > 0 {
		kinds := make([]string, 0, len(r.kinds))
		for k, n := range r.kinds {
			kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
		}
		sort.Strings(kinds)
		return fmt.Errorf("FAILED: %d of %d requests failed (%s); the first: %v",
			r.failed, r.failed+r.requests, strings.Join(kinds, ", "), r.first)
	}
	return r.recordErr
}

// fmtDur prints a latency in milliseconds with three significant digits.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0fms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}
