package main

import (
	"encoding/json"
	"fmt"
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
	return printListTable(e, c, "/v1/jobs", "job", &lf, t,
		func(p *page) []json.RawMessage { return p.Jobs }, jobRow)
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
