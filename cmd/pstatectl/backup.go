package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

func runBackup(e *env, args []string) error {
	fs := newFlagSet(e, "backup", "FILE",
		"Save a consistent snapshot of the daemon (GET /v1/snapshot) to FILE.\n"+
			"The snapshot is written to FILE.tmp, synced, checked to decode and\n"+
			"renamed to FILE.")
	var cf clientFlags
	cf.register(fs, e)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(fs, "want one file name, got %d arguments", len(pos))
	}
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	seq, n, err := backup(e, c, pos[0])
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "backup of seq %d: %d bytes (%s) in %s\n",
		seq, n, fmtBytes(n), pos[0])
	return err
}

// backup streams the snapshot into path.tmp, fsyncs it, checks that it
// decodes, renames it to path and fsyncs the directory. On an error the tmp
// file is removed and path is left as it was.
func backup(e *env, c *Client, path string) (seq uint64, n int64, err error) {
	resp, err := c.Do(e.ctx, http.MethodGet, "/v1/snapshot", nil, nil)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	seq, _ = strconv.ParseUint(resp.Header.Get("Pstate-Seq"), 10, 64)

	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("create backup: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	if n, err = io.Copy(f, resp.Body); err != nil {
		return 0, 0, fmt.Errorf("download snapshot into %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("sync %s: %w", tmp, err)
	}

	// A backup that does not decode is worse than none: check it before
	// it takes the name.
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("rewind %s: %w", tmp, err)
	}
	bseq, err := checkBackup(f, tmp)
	if err != nil {
		return 0, 0, err
	}
	if seq != 0 && bseq != seq {
		err = fmt.Errorf("check %s: snapshot holds seq %d, header Pstate-Seq says %d",
			tmp, bseq, seq)
		return 0, 0, err
	}
	seq = bseq
	if err = f.Close(); err != nil {
		return 0, 0, fmt.Errorf("close %s: %w", tmp, err)
	}

	if err = os.Rename(tmp, path); err != nil {
		return 0, 0, fmt.Errorf("rename backup: %w", err)
	}
	if err = syncDir(filepath.Dir(path)); err != nil {
		return 0, 0, err
	}
	return seq, n, nil
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir to sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
