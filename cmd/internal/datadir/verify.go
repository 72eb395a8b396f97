package datadir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/pstate"
	"github.com/pstate/pstate/wal"
	"github.com/pstate/pstate/wal/vfs"
)

// Kinds of findings that are not faults: Verify reports them, recovery
// handles them without losing anything.
const (
	// KindTornTail is a torn last log record: a crash in the middle of a
	// write that was never answered. Recovery cuts it off.
	KindTornTail = "torn-tail"
	// KindTemp is a temporary file left by a crash; recovery removes it.
	KindTemp = "temp-file"
)

// Kinds of faults Verify finds besides those of the wal and checkpoint
// packages' CorruptionErrors.
const (
	KindSnapshot = "snapshot" // a snapshot that cannot be read or decoded
	KindEvent    = "event"    // a log record whose payload is not an event
	KindLog      = "log"      // a log that cannot be scanned
	KindGap      = "gap"      // records missing between snapshot and log
)

// Finding is one thing Verify noticed.
type Finding struct {
	File    string `json:"file"`
	Offset  int64  `json:"offset"` // byte offset in File; -1 when none applies
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Fault reports whether the finding is damage (as opposed to a torn tail or
// a temporary file, which recovery handles by design).
func (f Finding) Fault() bool { return f.Kind != KindTornTail && f.Kind != KindTemp }

func (f Finding) String() string {
	if f.Offset >= 0 {
		return fmt.Sprintf("%s: offset %d: %s: %s", f.File, f.Offset, f.Kind, f.Message)
	}
	return fmt.Sprintf("%s: %s: %s", f.File, f.Kind, f.Message)
}

// Verify checks a data directory offline and read-only: it decodes every
// snapshot's state and every log record's event and checks that the log
// continues the newest sound snapshot. It takes no lock and changes
// nothing. The error is for a directory it cannot check at all; damage is
// reported in findings.
func Verify(dir string) (findings []Finding, err error) {
	return VerifyFS(vfs.OS, dir)
}

// VerifyFS is Verify on a given filesystem.
func VerifyFS(fsys vfs.FS, dir string) ([]Finding, error) {
	if _, err := fsys.List(dir); err != nil {
		return nil, fmt.Errorf("read data dir: %w", err)
	}
	snapDir := filepath.Join(dir, SnapshotDir)
	walDir := filepath.Join(dir, WALDir)
	var out []Finding
	out = append(out, findTemp(fsys, snapDir)...)
	out = append(out, findTemp(fsys, walDir)...)

	snaps, found := verifySnapshots(fsys, snapDir)
	out = append(out, found...)
	logFound, info, scanned := verifyLog(fsys, walDir)
	out = append(out, logFound...)

	// The newest sound snapshot must reach the log's first record (for an
	// empty log, its next seq), as recovery requires.
	var base uint64
	for _, s := range snaps {
		base = max(base, s)
	}
	if scanned && info.FirstSeq > base+1 {
		out = append(out, Finding{File: info.File, Offset: -1, Kind: KindGap,
			Message: fmt.Sprintf("log starts at seq %d but the newest sound snapshot "+
				"ends at seq %d", info.FirstSeq, base)})
	}
	return out, nil
}

// verifySnapshots decodes every snapshot; it returns the seqs of the sound
// ones.
func verifySnapshots(fsys vfs.FS, snapDir string) (sound []uint64, out []Finding) {
	infos, err := checkpoint.List(fsys, snapDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, []Finding{{File: snapDir, Offset: -1, Kind: KindSnapshot,
			Message: "list snapshots: " + err.Error()}}
	}
	for _, info := range infos {
		err := checkpoint.Read(fsys, info.Path, func(meta checkpoint.Meta, body io.Reader) error {
			_, err := pstate.DecodeSnapshot(body, meta.Seq)
			return err
		})
		if err == nil {
			sound = append(sound, info.Seq)
			continue
		}
		f := Finding{File: info.Path, Offset: -1, Kind: KindSnapshot, Message: err.Error()}
		var ce *checkpoint.CorruptionError
		if errors.As(err, &ce) {
			f.Offset, f.Kind = ce.Offset, ce.Kind
			if ce.File != "" {
				f.File = ce.File
			}
		}
		out = append(out, f)
	}
	return sound, out
}

// verifyLog scans the log and decodes every record's event.
func verifyLog(fsys vfs.FS, walDir string) (out []Finding, info wal.ScanInfo, ok bool) {
	if _, err := fsys.List(walDir); errors.Is(err, fs.ErrNotExist) {
		return nil, info, false
	}
	info, err := wal.Scan(fsys, walDir, func(seq uint64, off int64, payload []byte) error {
		if _, err := pstate.DecodeEvent(payload); err != nil {
			// File is set below, once Scan has named the log file.
			out = append(out, Finding{File: walDir, Offset: off, Kind: KindEvent,
				Message: fmt.Sprintf("record seq %d: %v", seq, err)})
		}
		return nil
	})
	fixFiles(out, info.File)
	if errors.Is(err, fs.ErrNotExist) {
		// A crash during the first start can leave wal/ without its file;
		// recovery then creates an empty log, so this is no fault.
		return out, info, false
	}
	if err != nil {
		f := Finding{File: walDir, Offset: -1, Kind: KindLog, Message: err.Error()}
		var ce *wal.CorruptionError
		if errors.As(err, &ce) {
			f.File, f.Offset, f.Kind = ce.File, ce.Offset, ce.Kind
		}
		return append(out, f), info, false
	}
	if info.TornOffset >= 0 {
		out = append(out, Finding{File: info.File, Offset: info.TornOffset, Kind: KindTornTail,
			Message: "torn last record (cut at the next start): " + info.TornReason})
	}
	return out, info, true
}

// fixFiles names the log file in findings made before Scan returned it.
func fixFiles(out []Finding, file string) {
	if file == "" {
		return
	}
	for i := range out {
		if out[i].Kind == KindEvent {
			out[i].File = file
		}
	}
}

// findTemp lists the temporary files of a directory.
func findTemp(fsys vfs.FS, dir string) []Finding {
	names, err := fsys.List(dir)
	if err != nil {
		return nil
	}
	var out []Finding
	for _, n := range names {
		if strings.HasSuffix(n, ".tmp") {
			out = append(out, Finding{File: filepath.Join(dir, n), Offset: -1, Kind: KindTemp,
				Message: "temporary file left by a crash; recovery removes it"})
		}
	}
	return out
}
