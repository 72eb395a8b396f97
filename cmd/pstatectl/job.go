package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
)

func runJob(e *env, args []string) error {
	fs := newFlagSet(e, "job", "ID [--json]", "Print one job with its steps and attempts.")
	var cf clientFlags
	cf.register(fs, e)
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(fs, "want one job id, got %d arguments", len(pos))
	}
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	body, _, err := c.Get(e.ctx, "/v1/jobs/"+url.PathEscape(pos[0]), nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(e.stdout, body)
	}
	var doc struct {
		Seq uint64  `json:"seq"`
		Job jobView `json:"job"`
	}
	if err := decodeJSON(body, "job", &doc); err != nil {
		return err
	}
	return printJob(e.stdout, &doc.Job)
}

// printJob prints a job's fields, then a table of its steps' attempts.
func printJob(w io.Writer, j *jobView) error {
	t := newTable(w)
	t.row("job", j.JobID)
	t.row("name", j.Name)
	t.row("state", j.State)
	t.row("labels", fmtLabels(j.Labels))
	t.row("submitted", fmtTime(j.SubmittedAt))
	t.row("finished", fmtTime(j.FinishedAt))
	ws := ""
	for i, id := range j.Workspaces {
		if i > 0 {
			ws += ","
		}
		ws += id
	}
	t.row("workspaces", ws)
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	t = newTable(w, "STEP", "ATTEMPT", "STATUS", "STARTED", "FINISHED", "EXIT")
	for _, s := range j.Steps {
		if len(s.Attempts) == 0 {
			t.row(s.Name, "", "pending", "", "", "")
			continue
		}
		for _, a := range s.Attempts {
			exit := ""
			if a.FinishedAt != "" {
				exit = strconv.Itoa(a.ExitCode)
			}
			t.row(s.Name, strconv.Itoa(a.Attempt), a.Status, fmtTime(a.StartedAt),
				fmtTime(a.FinishedAt), exit)
		}
	}
	return t.flush()
}
