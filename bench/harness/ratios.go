package harness

import (
	"fmt"
	"io"
	"strings"
)

// Target is one of the goals the numbers are checked against.
type Target struct {
	What   string
	Ratio  float64 // measured ratio, in the sense of the goal
	Goal   float64 // the ratio the goal asks for
	Met    bool
	Detail string
}

// Targets evaluates the goals on the rows present; a goal whose numbers
// are missing is left out.
func (r *Results) Targets() []Target {
	var out []Target
	add := func(what string, num, den float64, goal float64, detail string) {
		if den == 0 {
			return
		}
		ratio := num / den
		out = append(out, Target{What: what, Ratio: ratio, Goal: goal, Met: ratio >= goal,
			Detail: detail})
	}
	sizes := r.sizes()
	for _, at := range sizes {
		sc := "1 write latency @" + at
		for _, sys := range []string{"pstate", "pstate-http"} {
			p, ok := r.Value(sc, sys, "during checkpoints p99.9")
			if !ok {
				continue
			}
			for _, other := range []string{"baseline", "redis"} {
				if o, ok := r.Value(sc, other, "during checkpoints p99.9"); ok {
					add(fmt.Sprintf("%s: %s p99.9 during checkpoints vs %s", at, sys, other), o, p, 10,
						fmt.Sprintf("%s ms vs %s ms", num(p), num(o)))
				}
			}
		}
		sc = "3 durable events/s @" + at
		for _, w := range []string{"16 writers", "256 writers"} {
			for _, sys := range []string{"pstate", "pstate-http"} {
				p, ok := r.Value(sc, sys, w)
				if !ok {
					continue
				}
				if s, ok := r.Value(sc, "sqlite", w); ok {
					add(fmt.Sprintf("%s: %s events/s vs sqlite, %s", at, sys, w), p, s, 2,
						fmt.Sprintf("%s vs %s", num(p), num(s)))
				}
				if s, ok := r.Value(sc, "redis", w); ok {
					add(fmt.Sprintf("%s: %s events/s vs redis, %s", at, sys, w), p, s, 1,
						fmt.Sprintf("%s vs %s", num(p), num(s)))
				}
			}
			if share, ok := r.Value(sc, "pstate", "share of synced bandwidth, "+w); ok {
				add(fmt.Sprintf("%s: pstate log bandwidth vs disk's synced bandwidth, %s", at, w),
					share, 100, 0.7, fmt.Sprintf("%s%% of the disk's synced MiB/s", num(share)))
			}
		}
		sc = "4 recovery @" + at
		if s, ok := r.valuePrefix(sc, "sqlite", "restart to first answer"); ok {
			for _, sys := range []string{"pstate", "pstate-http"} {
				if p, ok := r.valuePrefix(sc, sys, "restart to first answer"); ok {
					add(fmt.Sprintf("%s: %s recovery vs sqlite open + first query", at, sys), s, p, 1,
						fmt.Sprintf("%s s vs %s s", num(p), num(s)))
				}
			}
		}
	}
	return out
}

// valuePrefix is Value for the first metric starting with prefix.
func (r *Results) valuePrefix(scenario, system, prefix string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range r.Rows {
		if row.Scenario == scenario && row.System == system && strings.HasPrefix(row.Metric, prefix) {
			return row.Value, true
		}
	}
	return 0, false
}

func (r *Results) sizes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, row := range r.Rows {
		const p = "6 footprint @"
		if len(row.Scenario) > len(p) && row.Scenario[:len(p)] == p {
			at := row.Scenario[len(p):]
			if !seen[at] {
				seen[at] = true
				out = append(out, at)
			}
		}
	}
	return out
}

// PrintTargets writes one line per goal.
func (r *Results) PrintTargets(w io.Writer) {
	for _, t := range r.Targets() {
		verdict := "MISSED"
		if t.Met {
			verdict = "met"
		}
		fmt.Fprintf(w, "- %s: ratio %s (goal %s) %s; %s\n", t.What, num(t.Ratio), num(t.Goal),
			verdict, t.Detail)
	}
}
