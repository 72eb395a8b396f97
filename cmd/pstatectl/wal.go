package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/pstate/pstate/cmd/internal/datadir"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

func runWAL(e *env, args []string) error {
	if len(args) == 0 || args[0] != "dump" {
		fs := newFlagSet(e, "wal", "dump --data-dir DIR [--from SEQ]",
			"Offline tools for the log; 'wal dump -h' for its flags.")
		if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fs.Usage()
			return flag.ErrHelp
		}
		if len(args) == 0 {
			return usagef(fs, "want a subcommand: dump")
		}
		return usagef(fs, "unknown subcommand %q (want dump)", args[0])
	}
	return runWALDump(e, args[1:])
}

func runWALDump(e *env, args []string) error {
	fs := newFlagSet(e, "wal dump", "--data-dir DIR [--from SEQ]",
		"Offline, read-only: print the log's records as NDJSON, one\n"+
			`{"seq":N,"offset":O,"event":{...}} per record. A torn last record is`+"\n"+
			"reported on stderr; other damage ends the dump with its file, offset\n"+
			"and kind, and exit status 1.")
	dir := fs.String("data-dir", "", "the data dir whose log to print")
	from := fs.Uint64("from", 0, "print only records with seq >= this")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef(fs, "--data-dir is required")
	}

	out := bufio.NewWriterSize(e.stdout, 64<<10)
	var line []byte
	var bad int
	walDir := filepath.Join(*dir, datadir.WALDir)
	info, err := wal.Scan(vfs.OS, walDir, func(seq uint64, off int64, payload []byte) error {
		if seq < *from {
			return nil
		}
		ev, derr := pstate.DecodeEvent(payload)
		if derr != nil {
			// Not skipped silently: named here, and the exit status says so.
			bad++
			fmt.Fprintf(e.stderr, "record seq %d at offset %d: event: %v\n", seq, off, derr)
			return nil
		}
		evb, merr := json.Marshal(&ev)
		if merr != nil {
			return fmt.Errorf("encode event of seq %d: %w", seq, merr)
		}
		line = append(line[:0], `{"seq":`...)
		line = strconv.AppendUint(line, seq, 10)
		line = append(line, `,"offset":`...)
		line = strconv.AppendInt(line, off, 10)
		line = append(line, `,"event":`...)
		line = append(line, evb...)
		line = append(line, '}', '\n')
		_, werr := out.Write(line)
		return werr
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		// A *wal.CorruptionError names the file, offset and kind.
		return fmt.Errorf("dump log: %w", err)
	}
	if info.Records == 0 {
		fmt.Fprintf(e.stderr, "note: %s holds no records: every event is in the newest "+
			"snapshot (a clean stop's final checkpoint empties the log)\n", info.File)
	}
	if info.TornOffset >= 0 {
		fmt.Fprintf(e.stderr, "note: %s: offset %d: torn last record (%s); recovery cuts it\n",
			info.File, info.TornOffset, info.TornReason)
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d record(s) hold no valid event", info.File, bad)
	}
	return nil
}
