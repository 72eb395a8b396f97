package main

import "fmt"

func runCheckpoint(e *env, args []string) error {
	fs := newFlagSet(e, "checkpoint", "[--json]",
		"Ask the daemon for a checkpoint now; prints its seq, size and duration\n"+
			"once the snapshot is durable and the log truncated.")
	var cf clientFlags
	cf.register(fs, e)
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	body, err := c.Post(e.ctx, "/v1/checkpoint", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(e.stdout, body)
	}
	var cp checkpointView
	if err := decodeJSON(body, "checkpoint", &cp); err != nil {
		return err
	}
	if cp.Skipped {
		_, err = fmt.Fprintf(e.stdout, "checkpoint at seq %d: nothing new since the last "+
			"one; its snapshot (%d bytes, %s) kept\n", cp.Seq, cp.Bytes, fmtBytes(cp.Bytes))
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "checkpoint at seq %d: %d bytes (%s) in %.1f ms\n",
		cp.Seq, cp.Bytes, fmtBytes(cp.Bytes), cp.DurationMS)
	return err
}
