package main

import (
	"encoding/json"
	"io"
	"net/url"
)

func runWorkspaces(e *env, args []string) error {
	fs := newFlagSet(e, "workspaces", "[ID] [flags]",
		"List workspaces ordered by id, or print the one named ID.")
	var cf clientFlags
	var lf listFlags
	cf.register(fs, e)
	lf.register(fs, false)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef(fs, "want at most one workspace id, got %d arguments", len(pos))
	}
	if err := lf.check(fs); err != nil {
		return err
	}
	c, err := cf.client(2)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(pos) == 1 {
		return printOneWorkspace(e, c, pos[0], lf.asJSON)
	}

	if lf.asJSON {
		return printPagesJSON(e, c, "/v1/workspaces", "workspaces", &lf)
	}
	t := newTable(e.stdout, "WORKSPACE ID", "JOB ID", "STATE", "PATH", "ALLOCATED",
		"RELEASED")
	return printListTable(e, c, "/v1/workspaces", "workspace", &lf, t,
		func(p *page) []json.RawMessage { return p.Workspaces }, workspaceRow)
}

// workspaceRow adds one workspace to the workspaces table.
func workspaceRow(t *table, w *workspaceView) {
	t.row(w.WorkspaceID, w.JobID, w.State, w.Path, fmtTime(w.AllocatedAt),
		fmtTime(w.ReleasedAt))
}

func printOneWorkspace(e *env, c *Client, id string, asJSON bool) error {
	body, _, err := c.Get(e.ctx, "/v1/workspaces/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	if asJSON {
		return writeRaw(e.stdout, body)
	}
	var doc struct {
		Workspace workspaceView `json:"workspace"`
	}
	if err := decodeJSON(body, "workspace", &doc); err != nil {
		return err
	}
	return printWorkspaceTable(e.stdout, []workspaceView{doc.Workspace})
}

// printWorkspaceTable prints workspaces as a table.
func printWorkspaceTable(w io.Writer, ws []workspaceView) error {
	t := newTable(w, "WORKSPACE ID", "JOB ID", "STATE", "PATH", "ALLOCATED", "RELEASED")
	for i := range ws {
		workspaceRow(t, &ws[i])
	}
	return t.flush()
}
