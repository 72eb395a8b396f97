package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strconv"
)

// listFlags are the paging flags of jobs and workspaces.
type listFlags struct {
	state  string
	label  string
	limit  int
	after  string
	all    bool
	asJSON bool
}

func (lf *listFlags) register(fs *flag.FlagSet, withLabel bool) {
	fs.StringVar(&lf.state, "state", "", "only items in this state")
	if withLabel {
		fs.StringVar(&lf.label, "label", "", "only jobs with this label, as k:v")
	}
	fs.IntVar(&lf.limit, "limit", 0, "items per page (server default 100, at most 1000)")
	fs.StringVar(&lf.after, "after", "", "start after this cursor (the next of a page)")
	fs.BoolVar(&lf.all, "all", false, "follow the cursors to the end of the list")
	fs.BoolVar(&lf.asJSON, "json", false, "print the raw JSON answer")
}

// query builds the query of the first page.
func (lf *listFlags) query() url.Values {
	q := url.Values{}
	if lf.state != "" {
		q.Set("state", lf.state)
	}
	if lf.label != "" {
		q.Set("label", lf.label)
	}
	if lf.limit > 0 {
		q.Set("limit", strconv.Itoa(lf.limit))
	}
	if lf.after != "" {
		q.Set("after", lf.after)
	}
	return q
}

// check validates the flags.
func (lf *listFlags) check(fs *flag.FlagSet) error {
	if lf.limit < 0 {
		return usagef(fs, "--limit must be positive, got %d", lf.limit)
	}
	return nil
}

// maxPages bounds how many pages --all follows; a list that long means a
// cursor that does not advance.
const maxPages = 1 << 24

// fetchList reads one page of path, or with all every page, calling fn with
// each. A cursor that repeats itself is an error rather than a loop.
func fetchList(e *env, c *Client, path string, lf *listFlags,
	fn func(p *page, raw []byte) error) error {
	q := lf.query()
	seen := map[string]bool{}
	for i := 0; i < maxPages; i++ {
		body, _, err := c.Get(e.ctx, path, q)
		if err != nil {
			return err
		}
		var p page
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("decode %s answer: %w", path, err)
		}
		if err := fn(&p, body); err != nil {
			return err
		}
		if !lf.all || p.Next == "" {
			return nil
		}
		if seen[p.Next] {
			return fmt.Errorf("read %s: the server repeated cursor %q", path, p.Next)
		}
		seen[p.Next] = true
		q.Set("after", p.Next)
	}
	return fmt.Errorf("read %s: more than %d pages", path, maxPages)
}

// printPagesJSON prints the pages of a list as the server sent them: one
// page as it came, several (--all) as one document holding every item, the
// seq of the last page and an empty next.
func printPagesJSON(e *env, c *Client, path, key string, lf *listFlags) error {
	if !lf.all {
		return fetchList(e, c, path, lf, func(_ *page, raw []byte) error {
			return writeRaw(e.stdout, raw)
		})
	}
	items := []json.RawMessage{}
	var seq uint64
	err := fetchList(e, c, path, lf, func(p *page, _ []byte) error {
		seq = p.Seq
		items = append(items, p.Jobs...)
		items = append(items, p.Workspaces...)
		return nil
	})
	if err != nil {
		return err
	}
	doc := map[string]any{"seq": seq, key: items, "next": ""}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return writeRaw(e.stdout, b)
}

// printListTable prints the listing at path as table t: items picks the
// page's raw entries, row adds one decoded entry (what names it in errors).
// Without --all it says how to fetch the next page.
func printListTable[T any](e *env, c *Client, path, what string, lf *listFlags, t *table,
	items func(*page) []json.RawMessage, row func(*table, *T)) error {
	var next string
	err := fetchList(e, c, path, lf, func(p *page, _ []byte) error {
		next = p.Next
		for _, raw := range items(p) {
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("decode %s: %w", what, err)
			}
			row(t, &v)
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
