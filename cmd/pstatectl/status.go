package main

import (
	"fmt"
	"io"
	"strconv"
)

func runStatus(e *env, args []string) error {
	fs := newFlagSet(e, "status", "[--json]", "Print the daemon's status.")
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

	body, _, err := c.Get(e.ctx, "/v1/status", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(e.stdout, body)
	}
	var st statusView
	if err := decodeJSON(body, "status", &st); err != nil {
		return err
	}
	return printStatus(e.stdout, &st)
}

// printStatus prints the status as aligned key/value lines.
func printStatus(w io.Writer, st *statusView) error {
	t := newTable(w)
	t.row("seq", strconv.FormatUint(st.Seq, 10))
	t.row("durable seq", strconv.FormatUint(st.DurableSeq, 10))
	t.row("sync", st.Sync)
	t.row("version", st.Version)
	t.row("wal", fmt.Sprintf("%s (%d bytes)", fmtBytes(st.WALBytes), st.WALBytes))
	if lc := st.LastCheckpoint; lc != nil {
		t.row("last checkpoint", fmt.Sprintf("seq %d at %s, %s, %.1f ms", lc.Seq,
			fmtTime(lc.Time), fmtBytes(lc.Bytes), lc.DurationMS))
	} else {
		t.row("last checkpoint", "none")
	}
	for _, kv := range orderedCounts(st.Jobs, jobStates...) {
		t.row("jobs "+kv[0], kv[1])
	}
	for _, kv := range orderedCounts(st.Workspaces, "allocated", "released") {
		t.row("workspaces "+kv[0], kv[1])
	}
	return t.flush()
}

// jobStates are the states of a job in lifecycle order.
var jobStates = []string{"queued", "running", "succeeded", "failed", "canceled"}

// writeRaw prints a JSON answer as it came, ending with a newline.
func writeRaw(w io.Writer, body []byte) error {
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	_, err := w.Write(body)
	return err
}
