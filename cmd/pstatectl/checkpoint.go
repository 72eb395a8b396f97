package main

import "fmt"

func runCheckpoint(e *env, args []string) error {
	fs := newFlagSet(e, "checkpoint", "[--json]",
		"Ask the daemon for a checkpoint now; prints its seq, size and duration\n"+
			"once the snapshot is durable and the log truncated.")
	var cf clientFlags
	cf.register(fs, e)
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(fs, "unexpected argument %q", pos[0])
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
	_, err = fmt.Fprintf(e.stdout, "checkpoint at seq %d: %d bytes (%s) in %.1f ms\n",
		cp.Seq, cp.Bytes, fmtBytes(cp.Bytes), cp.DurationMS)
	return err
}
