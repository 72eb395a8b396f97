package harness

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver "sqlite"

	"github.com/pstate/pstate/internal/workload"
)

// sqliteSys is SQLite (modernc.org/sqlite) in WAL mode with synchronous=
// FULL: one writer connection (SQLite admits one writer at a time), a pool
// of reader connections, one transaction per batch.
type sqliteSys struct {
	dir    string
	path   string
	w, r   *sql.DB
	stmts  map[string]*sql.Stmt
	readQs [3]*sql.Stmt

	// statusQuery is how long the status counts (jobs by state) took right
	// after the last Recover, a second "first query".
	statusQuery time.Duration
}

func newSQLite(dir string) *sqliteSys {
	return &sqliteSys{dir: dir, path: filepath.Join(dir, "pstate.db")}
}

func (s *sqliteSys) Name() string { return "sqlite" }

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS jobs (
	job_id TEXT PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL,
	steps TEXT NOT NULL, nsteps INTEGER NOT NULL, state TEXT NOT NULL,
	worker TEXT, reason TEXT, submitted_at INTEGER, started_at INTEGER,
	finished_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS attempts (
	job_id TEXT NOT NULL, step TEXT NOT NULL, attempt INTEGER NOT NULL,
	status TEXT NOT NULL, exit_code INTEGER, started_at INTEGER, finished_at INTEGER,
	PRIMARY KEY (job_id, step, attempt)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workspaces (
	workspace_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, path TEXT NOT NULL,
	state TEXT NOT NULL, allocated_at INTEGER, released_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS workspaces_job ON workspaces(job_id);
`

// One statement per kind of change; an event runs one or a few.
var sqliteStmts = map[string]string{
	"insJob": `INSERT INTO jobs (job_id, name, labels, steps, nsteps, state, worker, reason,
		submitted_at, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
	"startJob": `UPDATE jobs SET state='running', worker=?, started_at=? WHERE job_id=?`,
	"insAtt": `INSERT INTO attempts (job_id, step, attempt, status, exit_code, started_at,
		finished_at) VALUES (?,?,?,?,?,?,?)`,
	"finAtt": `UPDATE attempts SET status=?, exit_code=?, finished_at=?
		WHERE job_id=? AND step=? AND attempt=?`,
	// The contract's effect: a job whose every step's last attempt succeeded
	// or was skipped finishes succeeded.
	"succeed": `UPDATE jobs SET state='succeeded', finished_at=? WHERE job_id=? AND
		state='running' AND nsteps = (SELECT count(*) FROM attempts a WHERE a.job_id=jobs.job_id
		AND a.status IN ('succeeded','skipped') AND a.attempt = (SELECT max(attempt)
		FROM attempts b WHERE b.job_id=a.job_id AND b.step=a.step))`,
	"finJob": `UPDATE jobs SET state=?, reason=?, finished_at=? WHERE job_id=?`,
	"releaseAll": `UPDATE workspaces SET state='released', released_at=?
		WHERE job_id=? AND state='allocated'`,
	"insWs": `INSERT INTO workspaces (workspace_id, job_id, path, state, allocated_at, released_at)
		VALUES (?,?,?,?,?,?)`,
	"relWs":  `UPDATE workspaces SET state='released', released_at=? WHERE workspace_id=?`,
	"delAtt": `DELETE FROM attempts WHERE job_id=?`,
	"delWs":  `DELETE FROM workspaces WHERE job_id=?`,
	"delJob": `DELETE FROM jobs WHERE job_id=?`,
}

func (s *sqliteSys) open() error {
	dsn := "file:" + s.path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(60000)"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return err
	}
	r.SetMaxOpenConns(8)
	s.w, s.r = w, r
	if _, err := w.Exec(sqliteSchema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	s.stmts = map[string]*sql.Stmt{}
	for k, q := range sqliteStmts {
		st, err := w.Prepare(q)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", k, err)
		}
		s.stmts[k] = st
	}
	for i, q := range []string{
		`SELECT name, labels, steps, state, worker, reason, submitted_at, started_at, finished_at
			FROM jobs WHERE job_id=?`,
		`SELECT step, attempt, status, exit_code, started_at, finished_at FROM attempts
			WHERE job_id=? ORDER BY step, attempt`,
		`SELECT workspace_id FROM workspaces WHERE job_id=? ORDER BY workspace_id`,
	} {
		if s.readQs[i], err = r.Prepare(q); err != nil {
			return fmt.Errorf("prepare read: %w", err)
		}
	}
	return nil
}

func (s *sqliteSys) Load(ctx context.Context, ls *LoadSet) error {
	if err := s.open(); err != nil {
		return err
	}
	for start := 0; start < len(ls.Jobs); start += 2000 {
		if err := s.loadChunk(ctx, ls, start, min(start+2000, len(ls.Jobs))); err != nil {
			return err
		}
	}
	_, err := s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func (s *sqliteSys) loadChunk(ctx context.Context, ls *LoadSet, from, to int) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insJob, insAtt := tx.Stmt(s.stmts["insJob"]), tx.Stmt(s.stmts["insAtt"])
	insWs := tx.Stmt(s.stmts["insWs"])
	for i := from; i < to; i++ {
		j := ls.Jobs[i]
		labels, _ := json.Marshal(j.Labels)
		names := make([]string, len(j.Steps))
		for k, st := range j.Steps {
			names[k] = st.Name
		}
		steps, _ := json.Marshal(names)
		if _, err := insJob.Exec(j.ID, j.Name, string(labels), string(steps), len(names), j.State,
			j.Worker, j.Reason, nanos(j.SubmittedAt), nanos(ls.Time), nanos(j.FinishedAt)); err != nil {
			return err
		}
		for _, st := range j.Steps {
			for _, a := range st.Attempts {
				if _, err := insAtt.Exec(j.ID, st.Name, a.Attempt, a.Status, a.ExitCode,
					nanos(a.StartedAt), nanos(a.FinishedAt)); err != nil {
					return err
				}
			}
		}
		for _, w := range ls.Workspaces[i] {
			if _, err := insWs.Exec(w.ID, w.JobID, w.Path, w.State, nanos(w.AllocatedAt),
				nanos(w.ReleasedAt)); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

func (s *sqliteSys) Submit(ctx context.Context, batch []workload.Event) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UnixNano()
	for i := range batch {
		if err := s.apply(tx, &batch[i], now); err != nil {
			return fmt.Errorf("event %d (%s): %w", i, batch[i].Type, err)
		}
	}
	return tx.Commit()
}

func (s *sqliteSys) exec(tx *sql.Tx, name string, args ...any) (int64, error) {
	r, err := tx.Stmt(s.stmts[name]).Exec(args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (s *sqliteSys) apply(tx *sql.Tx, e *workload.Event, now int64) error {
	var err error
	switch e.Type {
	case workload.JobSubmitted:
		labels, _ := json.Marshal(e.Labels)
		steps, _ := json.Marshal(e.Steps)
		_, err = s.exec(tx, "insJob", e.JobID, e.Name, string(labels), string(steps), len(e.Steps),
			"queued", nil, nil, now, nil, nil)
	case workload.JobStarted:
		_, err = s.exec(tx, "startJob", e.Worker, now, e.JobID)
	case workload.StepStarted:
		_, err = s.exec(tx, "insAtt", e.JobID, e.Step, e.Attempt, "running", nil, now, nil)
	case workload.StepFinished:
		_, err = s.exec(tx, "finAtt", e.Status, e.ExitCode, now, e.JobID, e.Step, e.Attempt)
		if err == nil && e.Status != workload.StatusFailed {
			var n int64
			n, err = s.exec(tx, "succeed", now, e.JobID)
			if err == nil && n > 0 {
				_, err = s.exec(tx, "releaseAll", now, e.JobID)
			}
		}
	case workload.JobFinished:
		_, err = s.exec(tx, "finJob", e.Status, e.Reason, now, e.JobID)
		if err == nil {
			_, err = s.exec(tx, "releaseAll", now, e.JobID)
		}
	case workload.WorkspaceAllocated:
		_, err = s.exec(tx, "insWs", e.WorkspaceID, e.JobID, e.Path, "allocated", now, nil)
	case workload.WorkspaceReleased:
		_, err = s.exec(tx, "relWs", now, e.WorkspaceID)
	case workload.JobPurged:
		for _, q := range []string{"delAtt", "delWs", "delJob"} {
			if _, err = s.exec(tx, q, e.JobID); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("unknown event type %q", e.Type)
	}
	return err
}

// Read reads a job, its attempts and its workspace ids, as GET
// /v1/jobs/{id} answers.
func (s *sqliteSys) Read(ctx context.Context, jobID string) error {
	var name, labels, steps, state string
	var worker, reason sql.NullString
	var sub, st, fin sql.NullInt64
	err := s.readQs[0].QueryRowContext(ctx, jobID).Scan(&name, &labels, &steps, &state, &worker,
		&reason, &sub, &st, &fin)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return err
	}
	rows, err := s.readQs[1].QueryContext(ctx, jobID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var step, status string
		var att int
		var code, a, b sql.NullInt64
		if err := rows.Scan(&step, &att, &status, &code, &a, &b); err != nil {
			rows.Close()
			return err
		}
	}
	rows.Close()
	rows, err = s.readQs[2].QueryContext(ctx, jobID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
	}
	rows.Close()
	return rows.Err()
}

// Checkpoint is SQLite's own: copy the WAL into the database file and
// truncate the WAL.
func (s *sqliteSys) Checkpoint(ctx context.Context) error {
	_, err := s.r.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

func (s *sqliteSys) Footprint() (int64, int64, error) { return 0, dirSize(s.dir), nil }

// Recover closes the database (which checkpoints its WAL) and opens it
// again; the first query reads one job. The status counts are timed after
// that, as a second first query.
func (s *sqliteSys) Recover(ctx context.Context, firstJob string) (time.Duration, error) {
	s.closeDBs()
	start := time.Now()
	if err := s.open(); err != nil {
		return 0, err
	}
	if err := s.Read(ctx, firstJob); err != nil {
		return 0, err
	}
	d := time.Since(start)
	t0 := time.Now()
	rows, err := s.r.QueryContext(ctx, `SELECT state, count(*) FROM jobs GROUP BY state`)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
	}
	rows.Close()
	s.statusQuery = time.Since(t0)
	return d, rows.Err()
}

func (s *sqliteSys) closeDBs() {
	for _, st := range s.stmts {
		st.Close()
	}
	for _, st := range s.readQs {
		if st != nil {
			st.Close()
		}
	}
	if s.r != nil {
		s.r.Close()
	}
	if s.w != nil {
		s.w.Close()
	}
	s.w, s.r, s.stmts, s.readQs = nil, nil, nil, [3]*sql.Stmt{}
}

func (s *sqliteSys) Close() error {
	s.closeDBs()
	return nil
}
