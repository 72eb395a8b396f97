package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/pstate/pstate/wal"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := parseFlags(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.dataDir != "./data" || !slices.Equal(c.listen, []string{"unix:data/pstated.sock"}) ||
		c.metricsListen != "127.0.0.1:9464" || c.sync != wal.SyncAlways ||
		c.checkpointInterval != time.Minute || c.checkpointWALBytes != 64<<20 ||
		c.snapshotsKeep != 2 || c.retainFinished != 0 || c.logFormat != "json" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestEnvAndFlags(t *testing.T) {
	c, err := parseFlags([]string{"--sync", "none", "--listen", "127.0.0.1:1",
		"--listen=unix:/x.sock,[::1]:2"},
		env(map[string]string{
			"PSTATED_SYNC":                 "interval",
			"PSTATED_DATA_DIR":             "/srv/p",
			"PSTATED_METRICS_LISTEN":       "",
			"PSTATED_CHECKPOINT_WAL_BYTES": "1MiB",
			"PSTATED_RETAIN_FINISHED":      "24h",
			"PSTATED_LISTEN":               "unix:/ignored.sock",
		}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.sync != wal.SyncNone || c.dataDir != "/srv/p" || c.metricsListen != "" ||
		c.checkpointWALBytes != 1<<20 || c.retainFinished != 24*time.Hour {
		t.Fatalf("config %+v", c)
	}
	if want := []string{"127.0.0.1:1", "unix:/x.sock", "[::1]:2"}; !slices.Equal(c.listen, want) {
		t.Fatalf("listen %q, want %q", c.listen, want)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"--sync", "maybe"}},
		{args: []string{"--listen", "nowhere"}},
		{args: []string{"--metrics-listen", "unix:/m.sock"}},
		{args: []string{"--snapshots-keep", "0"}},
		{args: []string{"--checkpoint-wal-bytes", "lots"}},
		{args: []string{"--log-format", "xml"}},
		{args: []string{"--log-level", "loud"}},
		{args: []string{"--retain-finished", "-1h"}},
		{args: []string{"stray"}},
		{env: map[string]string{"PSTATED_CHECKPOINT_INTERVAL": "soon"}},
	} {
		_, err := parseFlags(tc.args, env(tc.env), io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v %v: err %v, want a usage error", tc.args, tc.env, err)
		}
	}
	if _, err := parseFlags([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "64MiB": 64 << 20, "1GiB": 1 << 30, "2KB": 2000, "10B": 10,
		" 3 MiB ": 3 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "9999999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}
