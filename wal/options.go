package wal

import (
	"fmt"
	"time"

	"github.com/pstate/pstate/wal/vfs"
)

// SyncMode says when a written record counts as durable.
type SyncMode uint8

// The sync modes.
const (
	// SyncAlways: a record is durable once fdatasync'd; concurrent writers
	// share one fdatasync (group commit).
	SyncAlways SyncMode = iota
	// SyncInterval: a record counts as durable once written; the log is
	// fdatasync'd every Options.SyncInterval.
	SyncInterval
	// SyncNone: a record counts as durable once written; the log is never
	// fdatasync'd (tests).
	SyncNone
)

// ParseSyncMode parses "always", "interval" or "none".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("wal: sync mode %q: want always, interval or none", s)
}

// String returns the mode's name as ParseSyncMode reads it.
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", uint8(m))
}

// DefaultMaxRecordSize is the default Options.MaxRecordSize.
const DefaultMaxRecordSize = 4 << 20

// Options configure a Log. The zero value works.
type Options struct {
	// FS is the filesystem; default vfs.OS.
	FS vfs.FS
	// Sync is the sync mode; default SyncAlways.
	Sync SyncMode
	// SyncInterval is the time between fdatasyncs under SyncInterval;
	// default 100ms.
	SyncInterval time.Duration
	// MaxRecordSize is the largest payload Write accepts; default 4 MiB,
	// at most MaxRecordLimit. The reader checks every length field the
	// same way against the limit stored in the file header.
	MaxRecordSize int

	// OnSync, if set, is called after each fdatasync of the log with its
	// duration and result.
	OnSync func(d time.Duration, err error)
	// OnTruncateLock, if set, is called with the duration of each hold of
	// the log's lock by TruncateBefore.
	OnTruncateLock func(d time.Duration)
	// OnRepair, if set, is called when Open cut a torn last record: the
	// file, the offset it was cut at and why.
	OnRepair func(file string, offset int64, reason string)
}

func (o *Options) fill() {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 100 * time.Millisecond
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
}

func (o *Options) validate() error {
	switch {
	case o.Sync > SyncNone:
		return fmt.Errorf("wal: options: sync mode %d unknown", o.Sync)
	case o.SyncInterval < 0:
		return fmt.Errorf("wal: options: sync interval %v negative", o.SyncInterval)
	case o.MaxRecordSize < 0 || o.MaxRecordSize > MaxRecordLimit:
		return fmt.Errorf("wal: options: max record size %d not in [1, %d]",
			o.MaxRecordSize, MaxRecordLimit)
	}
	return nil
}
