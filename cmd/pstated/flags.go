package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/cmd/internal/netaddr"
	"github.com/pstate/pstate/wal"
)

// envPrefix prefixes the environment variable of every flag:
// --checkpoint-wal-bytes is also PSTATED_CHECKPOINT_WAL_BYTES.
const envPrefix = "PSTATED_"

// config is the daemon's parsed command line.
type config struct {
	dataDir            string
	listen             []string // parsed with netaddr.Parse
	metricsListen      string   // "" disables the metrics listener
	authTokenFile      string
	sync               wal.SyncMode
	syncInterval       time.Duration
	checkpointInterval time.Duration
	checkpointWALBytes int64
	snapshotsKeep      int
	retainFinished     time.Duration
	logFormat          string
	logLevel           zapcore.Level
	version            bool
}

// usageError is bad usage: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// listFlag is a repeatable flag; each value may be comma-separated.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// sizeFlag is a byte count with an optional unit: 64MiB, 512KiB, 1GB, 4096.
type sizeFlag int64

func (s *sizeFlag) String() string {
	n := int64(*s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

func parseSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want a byte count like 67108864 or 64MiB", v)
	}
	return n * mult, nil
}

// parseFlags reads the command line, then fills every flag not given there
// from its PSTATED_ variable. Errors are *usageError, or flag.ErrHelp.
func parseFlags(args []string, lookupEnv func(string) (string, bool),
	stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("pstated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pstated [flags]\n\nThe pstate daemon. Every flag may also "+
			"come from the environment as\nPSTATED_<NAME> (--data-dir is PSTATED_DATA_DIR); "+
			"a flag on the command line wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		c        config
		listen   listFlag
		sync     = "always"
		level    = "info"
		walBytes = sizeFlag(64 << 20)
	)
	fs.StringVar(&c.dataDir, "data-dir", "./data", "data directory: wal/, snapshots/ and the lock")
	fs.Var(&listen, "listen",
		"`ADDR` to serve the API on: unix:PATH or HOST:PORT, repeatable or comma-separated "+
			"(default unix:DIR/pstated.sock)")
	fs.StringVar(&c.metricsListen, "metrics-listen", "127.0.0.1:9464",
		"HOST:PORT of the Prometheus /metrics listener; empty disables it")
	fs.StringVar(&c.authTokenFile, "auth-token-file", "",
		"file holding the bearer token required on TCP listeners")
	fs.StringVar(&sync, "sync", sync, "always | interval | none")
	fs.DurationVar(&c.syncInterval, "sync-interval", 100*time.Millisecond,
		"time between fsyncs under --sync interval")
	fs.DurationVar(&c.checkpointInterval, "checkpoint-interval", 60*time.Second,
		"time between checkpoints")
	fs.Var(&walBytes, "checkpoint-wal-bytes",
		"also checkpoint when the log grows past `SIZE` bytes (64MiB, 1GiB); 0 never")
	fs.IntVar(&c.snapshotsKeep, "snapshots-keep", 2, "snapshots kept after a checkpoint")
	fs.DurationVar(&c.retainFinished, "retain-finished", 0,
		"purge jobs this long after they finish; 0 keeps them")
	fs.StringVar(&c.logFormat, "log-format", "json", "json | console")
	fs.StringVar(&level, "log-level", level, "debug | info | warn | error")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := fillFromEnv(fs, lookupEnv); err != nil {
		return nil, err
	}
	c.checkpointWALBytes = int64(walBytes)
	if err := c.finish(listen, sync, level); err != nil {
		return nil, err
	}
	return &c, nil
}

// fillFromEnv sets every flag that the command line did not set from its
// environment variable, when that is set (even to "").
func fillFromEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := envName(f.Name)
		v, ok := lookupEnv(name)
		if !ok {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = usagef("%s=%q: %v", name, v, serr)
		}
	})
	return err
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// finish checks the values and fills the defaults that depend on others.
func (c *config) finish(listen listFlag, sync, level string) error {
	if c.dataDir == "" {
		return usagef("--data-dir is empty")
	}
	c.listen = netaddr.Split(listen)
	if len(c.listen) == 0 {
		c.listen = []string{netaddr.UnixPrefix + filepath.Join(c.dataDir, datadir.SocketName)}
	}
	for _, a := range c.listen {
		if _, _, err := netaddr.Parse(a); err != nil {
			return usagef("--listen: %v", err)
		}
	}
	if c.metricsListen != "" {
		if network, _, err := netaddr.Parse(c.metricsListen); err != nil {
			return usagef("--metrics-listen: %v", err)
		} else if network != "tcp" {
			return usagef("--metrics-listen %q: want HOST:PORT", c.metricsListen)
		}
	}
	var err error
	if c.sync, err = wal.ParseSyncMode(sync); err != nil {
		return usagef("--sync: %v", err)
	}
	switch {
	case c.syncInterval <= 0:
		return usagef("--sync-interval %v: must be positive", c.syncInterval)
	case c.checkpointInterval <= 0:
		return usagef("--checkpoint-interval %v: must be positive", c.checkpointInterval)
	case c.snapshotsKeep < 1:
		return usagef("--snapshots-keep %d: must be at least 1", c.snapshotsKeep)
	case c.retainFinished < 0:
		return usagef("--retain-finished %v: must not be negative", c.retainFinished)
	case c.logFormat != "json" && c.logFormat != "console":
		return usagef("--log-format %q: want json or console", c.logFormat)
	}
	if c.logLevel, err = zapcore.ParseLevel(level); err != nil {
		return usagef("--log-level: %v", err)
	}
	return nil
}
