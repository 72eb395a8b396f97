package workload

import (
	"errors"
	"fmt"
	"strconv"
)

// Config shapes the generated jobs. The zero value works: a zero field takes
// the default named in its comment. A negative rate disables that behaviour.
type Config struct {
	// Seed selects the whole workload; the same seed gives the same events.
	Seed uint64
	// Prefix starts every job, workspace and event id (default "job"), so
	// that two loads into one store can be kept apart.
	Prefix string
	// MinSteps and MaxSteps bound the steps a job declares (defaults 5 and
	// 20); each job draws its count uniformly. Equal values fix the count.
	MinSteps, MaxSteps int
	// MaxAttempts is how often a step is tried before the job fails
	// (default 3).
	MaxAttempts int
	// FailRate is the chance that one attempt fails (default 0.05).
	FailRate float64
	// SkipRate is the chance that a step is skipped (default 0.02).
	SkipRate float64
	// CancelRate is the chance that a job is canceled between two steps
	// (default 0.03).
	CancelRate float64
	// ScratchRate is the chance that a job takes a second workspace for one
	// step (default 0.3).
	ScratchRate float64
	// PurgeRate is the chance that a finished job is purged at the end of
	// its sequence (default 0.1).
	PurgeRate float64
	// RetryRate is the chance that a failed attempt is retried while
	// attempts are left (default 1: always).
	RetryRate float64
	// WorkspaceRate is the chance that a job gets workspaces at all
	// (default 1: always).
	WorkspaceRate float64
	// ReleaseRate is the chance that the client releases a workspace
	// itself before the job ends; the others are left to the store, which
	// releases them when the job ends (default 1: always by the client).
	ReleaseRate float64
}

// Defaults of Config.
const (
	DefaultPrefix      = "job"
	DefaultMinSteps    = 5
	DefaultMaxSteps    = 20
	DefaultMaxAttempts = 3
	DefaultFailRate    = 0.05
	DefaultSkipRate    = 0.02
	DefaultCancelRate  = 0.03
	DefaultScratchRate = 0.3
	DefaultPurgeRate   = 0.1
	// RetryRate, WorkspaceRate and ReleaseRate default to 1.
)

// stepNames are the base names of a job's steps; a step's name is its
// index and one of these, so names are unique within a job.
var stepNames = []string{
	"checkout", "deps", "compile", "lint", "unit-test", "integration",
	"package", "sign", "upload", "deploy", "smoke", "notify",
}

var (
	teams = []string{"infra", "web", "data", "ml", "mobile", "payments", "search", "ads"}
	envs  = []string{"prod", "staging", "dev"}
	prios = []string{"high", "normal", "low"}
)

func rate(v, def float64) float64 {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// withDefaults fills the zero fields and checks the result.
func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MinSteps == 0 {
		c.MinSteps = DefaultMinSteps
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = max(DefaultMaxSteps, c.MinSteps)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	c.FailRate = rate(c.FailRate, DefaultFailRate)
	c.SkipRate = rate(c.SkipRate, DefaultSkipRate)
	c.CancelRate = rate(c.CancelRate, DefaultCancelRate)
	c.ScratchRate = rate(c.ScratchRate, DefaultScratchRate)
	c.PurgeRate = rate(c.PurgeRate, DefaultPurgeRate)
	c.RetryRate = rate(c.RetryRate, 1)
	c.WorkspaceRate = rate(c.WorkspaceRate, 1)
	c.ReleaseRate = rate(c.ReleaseRate, 1)
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.MinSteps < 1:
		return errors.New("workload: MinSteps must be at least 1")
	case c.MaxSteps < c.MinSteps:
		return fmt.Errorf("workload: MaxSteps %d below MinSteps %d", c.MaxSteps, c.MinSteps)
	case c.MaxAttempts < 1:
		return errors.New("workload: MaxAttempts must be at least 1")
	case c.FailRate+c.SkipRate > 1:
		return errors.New("workload: FailRate plus SkipRate exceeds 1")
	}
	for _, r := range []float64{c.CancelRate, c.ScratchRate, c.PurgeRate, c.RetryRate,
		c.WorkspaceRate, c.ReleaseRate} {
		if r > 1 {
			return fmt.Errorf("workload: rate %v exceeds 1", r)
		}
	}
	return nil
}

// Generator yields the events of numbered jobs. It is safe for concurrent
// use: it holds only the configuration.
type Generator struct {
	cfg Config
}

// New returns a generator for cfg, or an error naming the bad field.
func New(cfg Config) (*Generator, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Generator{cfg: c}, nil
}

// Config returns the configuration with its defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// JobID is the id of job n.
func (g *Generator) JobID(n int) string {
	return g.cfg.Prefix + "-" + pad(n)
}

// pad formats n with at least eight digits, so ids sort by number.
func pad(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 8 {
		s = "00000000"[len(s):] + s
	}
	return s
}

// Job returns the events of job n, in the order a store must receive them.
func (g *Generator) Job(n int) []Event {
	return g.AppendJob(nil, n)
}
