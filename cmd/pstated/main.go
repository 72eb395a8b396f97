package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/cmd/internal/sdnotify"
	"github.com/pstate/pstate/wal"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "pstated: %v\nRun 'pstated -h' for usage.\n", err)
		return exitUsage
	}
	if cfg.version {
		fmt.Fprintf(stdout, "pstated %s\n", version)
		return exitOK
	}
	log := newLogger(cfg.logFormat, cfg.logLevel, stderr)
	defer func() { _ = log.Sync() }()

	d := &daemon{cfg: cfg, log: log, notify: sdnotify.FromEnv()}
	err = d.run()
	var ue *usageError
	switch {
	case err == nil:
		log.Info("stopped")
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "pstated: %v\nRun 'pstated -h' for usage.\n", err)
		return exitUsage
	default:
		log.Error("pstated failed", append(corruptionFields(err), zap.Error(err))...)
		return exitFail
	}
}

// corruptionFields lifts the file, offset and kind of a damaged file out of
// an error into log fields.
func corruptionFields(err error) []zap.Field {
	var we *wal.CorruptionError
	if errors.As(err, &we) {
		return []zap.Field{zap.String("file", we.File), zap.Int64("offset", we.Offset),
			zap.String("kind", we.Kind)}
	}
	var ce *checkpoint.CorruptionError
	if errors.As(err, &ce) {
		return []zap.Field{zap.String("file", ce.File), zap.Int64("offset", ce.Offset),
			zap.String("kind", ce.Kind)}
	}
	return nil
}
