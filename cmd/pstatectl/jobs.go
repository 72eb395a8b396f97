package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
)

func runJobs(e *env, args []string) error {
	fs := newFlagSet(e, "jobs", "[flags]", "List jobs, ordered by job id.")
	var cf clientFlags
	var lf listFlags
	cf.register(fs, e)
	lf.register(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(fs, "unexpected argument %q (use 'pstatectl job ID' for one job)", pos[0])
	}
	if err := lf.check(fs); err != nil {
		return err
	}
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()

	if lf.asJSON {
		return printPagesJSON(e, c, "/v1/jobs", "jobs", &lf)
	}
	t := newTable(e.stdout, "JOB ID", "NAME", "STATE", "STEPS", "ATTEMPTS", "LABELS",
		"SUBMITTED", "FINISHED")
	var next string
	err = fetchList(e, c, "/v1/jobs", &lf, func(p *page, _ []byte) error {
		next = p.Next
		for _, raw := range p.Jobs {
			var j jobView
			if err := json.Unmarshal(raw, &j); err != nil {
				return fmt.Errorf("decode job: %w", err)
			}
			jobRow(t, &j)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := t.flush(); err != nil {
		return err
	}
	if next != "" && !lf.all {
		fmt.Fprintf(e.stderr, "more: --after %s (or --all)\n", next)
	}
	return nil
}

// jobRow adds one job to the jobs table.
func jobRow(t *table, j *jobView) {
	done, attempts := 0, 0
	for i := range j.Steps {
		if j.Steps[i].done() {
			done++
		}
		attempts += len(j.Steps[i].Attempts)
	}
	t.row(j.JobID, j.Name, j.State, fmt.Sprintf("%d/%d", done, len(j.Steps)),
		strconv.Itoa(attempts), fmtLabels(j.Labels), fmtTime(j.SubmittedAt),
		fmtTime(j.FinishedAt))
}

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
