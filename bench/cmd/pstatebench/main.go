// Command pstatebench runs the side-by-side benchmarks of pstate, the
// baseline engine, SQLite and Redis on this machine and writes the table
// to stdout and the rows to a JSON file. See docs/BENCHMARKS.md.
//
//	pstatebench [-quick] [-pstated bin/pstated] [-out bench/out/results.json]
//	            [-sizes 100000,1000000] [-systems pstate,redis] [-scenarios 146]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pstate/pstate/bench/harness"
)

func main() {
	os.Exit(run())
}

func run() int {
	quick := flag.Bool("quick", false, "small sizes and short windows (under a minute)")
	pstated := flag.String("pstated", "bin/pstated", "the daemon binary; empty leaves pstate-http out")
	out := flag.String("out", "bench/out/results.json", "where the rows go as JSON")
	dir := flag.String("dir", "", "scratch directory (default: a new temporary one)")
	systems := flag.String("systems", "",
		"comma-separated subset of "+strings.Join(harness.AllSystems, ","))
	sizes := flag.String("sizes", "", "comma-separated job counts, overriding the mode's")
	scenarios := flag.String("scenarios", "", "which scenarios run, e.g. 146 (default all: 123456)")
	flag.Parse()

	cfg := harness.FullConfig()
	if *quick {
		cfg = harness.QuickConfig()
	}
	if *sizes != "" {
		cfg.Sizes = nil
		for _, s := range strings.Split(*sizes, ",") {
			var n int
			if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "pstatebench: bad size %q\n", s)
				return 2
			}
			cfg.Sizes = append(cfg.Sizes, n)
		}
	}
	cfg.Scenarios = *scenarios
	if *systems != "" {
		cfg.Systems = strings.Split(*systems, ",")
	}
	if *pstated != "" {
		if _, err := os.Stat(*pstated); err != nil {
			fmt.Fprintf(os.Stderr, "pstatebench: %v (run make build first)\n", err)
			return 1
		}
		cfg.Pstated = *pstated
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		cfg.RedisServer = p
	}
	cfg.Dir = *dir
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "pstatebench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "pstatebench:", err)
			return 1
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}
	cfg.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := harness.Run(ctx, cfg)
	if res != nil {
		fmt.Println()
		res.Table(os.Stdout)
		fmt.Println()
		res.PrintTargets(os.Stdout)
		for _, n := range res.Notes {
			fmt.Println("note:", n)
		}
		if werr := res.WriteJSON(*out); werr != nil {
			fmt.Fprintln(os.Stderr, "pstatebench:", werr)
			return 1
		}
		fmt.Printf("\nrows written to %s (%.0f s)\n", *out, res.Elapsed)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pstatebench:", err)
		return 1
	}
	return 0
}
