package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Row is one measured number.
type Row struct {
	Scenario string  `json:"scenario"`
	System   string  `json:"system"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
}

// Results collects the rows of one run.
type Results struct {
	mu      sync.Mutex
	Machine Machine   `json:"machine"`
	Mode    string    `json:"mode"`
	Started time.Time `json:"started"`
	Elapsed float64   `json:"elapsed_seconds"`
	Rows    []Row     `json:"rows"`
	Notes   []string  `json:"notes"`
	log     io.Writer
}

// Add records a row and prints it as progress.
func (r *Results) Add(scenario, system, metric string, v float64, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rows = append(r.Rows, Row{scenario, system, metric, v, unit})
	if r.log != nil {
		fmt.Fprintf(r.log, "  %-22s %-12s %-28s %14s %s\n", scenario, system, metric, num(v), unit)
	}
}

// Note records a remark (a skipped system, a failure) for the report.
func (r *Results) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	r.Notes = append(r.Notes, s)
	if r.log != nil {
		fmt.Fprintln(r.log, "note:", s)
	}
}

// Value returns a recorded value.
func (r *Results) Value(scenario, system, metric string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range r.Rows {
		if row.Scenario == scenario && row.System == system && row.Metric == metric {
			return row.Value, true
		}
	}
	return 0, false
}

// WriteJSON writes the results to path, making its directory.
func (r *Results) WriteJSON(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// systemOrder is the column order of the table.
var systemOrder = []string{"pstate", "pstate-http", "baseline", "sqlite", "redis", "disk"}

// Table writes the rows as one table: a line per scenario and metric, a
// column per system. It is Markdown, so it reads on a terminal and pastes
// into docs/BENCHMARKS.md.
func (r *Results) Table(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	type key struct{ scenario, metric, unit string }
	var keys []key
	vals := map[key]map[string]float64{}
	for _, row := range r.Rows {
		k := key{row.Scenario, row.Metric, row.Unit}
		if vals[k] == nil {
			vals[k] = map[string]float64{}
			keys = append(keys, k)
		}
		vals[k][row.System] = row.Value
	}
	fmt.Fprintf(w, "| scenario | metric | unit | %s |\n", strings.Join(systemOrder, " | "))
	fmt.Fprintf(w, "|---|---|---|%s\n", strings.Repeat("---:|", len(systemOrder)))
	for _, k := range keys {
		cells := make([]string, len(systemOrder))
		for i, s := range systemOrder {
			if v, ok := vals[k][s]; ok {
				cells[i] = num(v)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", k.scenario, k.metric, k.unit,
			strings.Join(cells, " | "))
	}
}

// num formats a value with three significant digits, without exponents.
func num(v float64) string {
	switch a := max(v, -v); {
	case v == float64(int64(v)) && a < 1e15:
		return fmt.Sprintf("%d", int64(v))
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.001:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
	}
	return fmt.Sprintf("%.6f", v)
}

// latency rows in milliseconds.
func (r *Results) addLatency(scenario, system, prefix string, s Summary) {
	if s.N == 0 {
		return
	}
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	for _, m := range []struct {
		name string
		v    time.Duration
	}{{"p50", s.P50}, {"p99", s.P99}, {"p99.9", s.P999}, {"max", s.Max}} {
		r.Add(scenario, system, prefix+m.name, ms(m.v), "ms")
	}
}

// Summary is a latency distribution.
type Summary struct {
	N                   int
	P50, P99, P999, Max time.Duration
}

// Summarize sorts ds in place and returns its percentiles.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	slices.Sort(ds)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.5) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Summary{N: len(ds), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: ds[len(ds)-1]}
}
