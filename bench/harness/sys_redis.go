package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pstate/pstate/bench/resp"
	"github.com/pstate/pstate/internal/workload"
)

// redisSys is a redis-server the harness starts on a unix socket in its
// own directory with appendonly yes, appendfsync always and no RDB save
// points; BGSAVE is its checkpoint. A batch is one MULTI/EXEC sent as one
// pipeline.
//
// Keys: job:ID (hash of the job's fields), att:ID (hash: "step#n" ->
// status|exit|finished, "step#n@" -> started), jobws:ID (set of workspace
// ids), ws:WID (hash), jobs:STATE (set of job ids).
type redisSys struct {
	bin, dir, sock string
	cmd            *exec.Cmd
	exited         chan struct{}
	pool           chan *resp.Conn

	mu    sync.Mutex
	jobs  map[string]*redisJob // jobs written through Submit: what the effects need
	wsJob map[string]string    // workspace id -> job id, for those jobs
}

// redisJob is what the client keeps to apply the contract's effects (a
// job finishing when its last step succeeds, workspaces released when a
// job ends), which Redis does not compute.
type redisJob struct {
	steps []string
	last  map[string]string // step -> status of its last attempt
	state string
	open  []string // allocated workspaces
	allWs []string // every workspace, deleted with the job
}

func newRedis(bin, dir string) *redisSys {
	return &redisSys{bin: bin, dir: dir, sock: filepath.Join(dir, "redis.sock"),
		jobs: map[string]*redisJob{}, wsJob: map[string]string{}}
}

func (r *redisSys) Name() string { return "redis" }

func (r *redisSys) start() error {
	r.cmd = exec.Command(r.bin, "--port", "0", "--unixsocket", r.sock, "--unixsocketperm", "700",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--logfile", filepath.Join(r.dir, "redis.log"),
		"--maxclients", "1024")
	// If the harness dies, the kernel kills the server too.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); close(ch) }(r.cmd, r.exited)
	r.pool = make(chan *resp.Conn, 512)
	return nil
}

// ready waits until the server answers PING with PONG (it answers LOADING
// while it reads its files), polling every millisecond.
func (r *redisSys) ready(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			return fmt.Errorf("redis-server exited; see %s", filepath.Join(r.dir, "redis.log"))
		default:
		}
		if c, err := resp.Dial("unix", r.sock); err == nil {
			v, err := c.Do("PING")
			if err == nil && v.Str == "PONG" {
				r.put(c)
				return nil
			}
			c.Close()
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("redis-server not ready in time")
}

func (r *redisSys) get() (*resp.Conn, error) {
	select {
	case c := <-r.pool:
		return c, nil
	default:
		return resp.Dial("unix", r.sock)
	}
}

func (r *redisSys) put(c *resp.Conn) {
	select {
	case r.pool <- c:
	default:
		c.Close()
	}
}

// exec sends the queued commands of c; a failed connection is dropped.
func (r *redisSys) exec(c *resp.Conn) ([]resp.Value, error) {
	vs, err := c.Exec()
	var re resp.Error
	if err != nil && !errors.As(err, &re) {
		c.Close()
		return nil, err
	}
	r.put(c)
	return vs, err
}

func (r *redisSys) Load(ctx context.Context, ls *LoadSet) error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := r.start(); err != nil {
		return err
	}
	if err := r.ready(ctx, 30*time.Second); err != nil {
		return err
	}
	c, err := r.get()
	if err != nil {
		return err
	}
	t := strconv.FormatInt(ls.Time.UnixNano(), 10)
	for i, j := range ls.Jobs {
		labels, _ := json.Marshal(j.Labels)
		names := make([]string, len(j.Steps))
		att := []string{"HSET", "att:" + j.ID}
		for k, st := range j.Steps {
			names[k] = st.Name
			for _, a := range st.Attempts {
				f := st.Name + "#" + strconv.Itoa(a.Attempt)
				att = append(att, f+"@", t, f, a.Status+"|"+strconv.Itoa(a.ExitCode)+"|"+t)
			}
		}
		steps, _ := json.Marshal(names)
		c.Append("HSET", "job:"+j.ID, "name", j.Name, "labels", string(labels), "steps",
			string(steps), "state", j.State, "worker", j.Worker, "reason", j.Reason,
			"submitted_at", t, "started_at", t, "finished_at", t)
		c.Append("SADD", "jobs:"+j.State, j.ID)
		if len(att) > 2 {
			c.Append(att...)
		}
		for _, w := range ls.Workspaces[i] {
			c.Append("HSET", "ws:"+w.ID, "job_id", j.ID, "path", w.Path, "state", w.State,
				"allocated_at", t, "released_at", t)
			c.Append("SADD", "jobws:"+j.ID, w.ID)
		}
		if i%500 == 499 || i == len(ls.Jobs)-1 {
			if _, err := r.exec(c); err != nil {
				return err
			}
			if c, err = r.get(); err != nil {
				return err
			}
		}
	}
	r.put(c)
	return nil
}

func (r *redisSys) Submit(ctx context.Context, batch []workload.Event) error {
	c, err := r.get()
	if err != nil {
		return err
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	c.Append("MULTI")
	r.mu.Lock()
	for i := range batch {
		r.appendEvent(c, &batch[i], now)
	}
	r.mu.Unlock()
	c.Append("EXEC")
	vs, err := r.exec(c)
	if err != nil {
		return err
	}
	if last := vs[len(vs)-1]; last.Kind != '*' || last.Null {
		return fmt.Errorf("redis: transaction failed: %+v", last)
	}
	return nil
}

// appendEvent queues the commands of one event; the caller holds r.mu.
func (r *redisSys) appendEvent(c *resp.Conn, e *workload.Event, now string) {
	jk, ak := "job:"+e.JobID, "att:"+e.JobID
	j := r.jobs[e.JobID]
	switch e.Type {
	case workload.JobSubmitted:
		labels, _ := json.Marshal(e.Labels)
		steps, _ := json.Marshal(e.Steps)
		c.Append("HSET", jk, "name", e.Name, "labels", string(labels), "steps", string(steps),
			"state", "queued", "submitted_at", now)
		c.Append("SADD", "jobs:queued", e.JobID)
		r.jobs[e.JobID] = &redisJob{steps: e.Steps, last: map[string]string{}, state: "queued"}
	case workload.JobStarted:
		c.Append("HSET", jk, "state", "running", "worker", e.Worker, "started_at", now)
		c.Append("SMOVE", "jobs:queued", "jobs:running", e.JobID)
		if j != nil {
			j.state = "running"
		}
	case workload.StepStarted:
		c.Append("HSET", ak, e.Step+"#"+strconv.Itoa(e.Attempt)+"@", now)
		if j != nil {
			j.last[e.Step] = "running"
		}
	case workload.StepFinished:
		c.Append("HSET", ak, e.Step+"#"+strconv.Itoa(e.Attempt),
			e.Status+"|"+strconv.Itoa(e.ExitCode)+"|"+now)
		if j != nil {
			j.last[e.Step] = e.Status
			if j.state == "running" && j.allDone() {
				r.finish(c, e.JobID, j, workload.StatusSucceeded, "", now)
			}
		}
	case workload.JobFinished:
		if j != nil {
			r.finish(c, e.JobID, j, e.Status, e.Reason, now)
		}
	case workload.WorkspaceAllocated:
		c.Append("HSET", "ws:"+e.WorkspaceID, "job_id", e.JobID, "path", e.Path,
			"state", "allocated", "allocated_at", now)
		c.Append("SADD", "jobws:"+e.JobID, e.WorkspaceID)
		if j != nil {
			j.open = append(j.open, e.WorkspaceID)
			j.allWs = append(j.allWs, e.WorkspaceID)
			r.wsJob[e.WorkspaceID] = e.JobID
		}
	case workload.WorkspaceReleased:
		c.Append("HSET", "ws:"+e.WorkspaceID, "state", "released", "released_at", now)
		if j := r.jobs[r.wsJob[e.WorkspaceID]]; j != nil {
			j.open = remove(j.open, e.WorkspaceID)
		}
	case workload.JobPurged:
		keys := []string{"DEL", jk, ak, "jobws:" + e.JobID}
		if j != nil {
			for _, w := range j.allWs {
				keys = append(keys, "ws:"+w)
				delete(r.wsJob, w)
			}
			c.Append("SREM", "jobs:"+j.state, e.JobID)
		}
		c.Append(keys...)
		delete(r.jobs, e.JobID)
	}
}

func (j *redisJob) allDone() bool {
	for _, s := range j.steps {
		if st := j.last[s]; st != workload.StatusSucceeded && st != workload.StatusSkipped {
			return false
		}
	}
	return true
}

// finish queues a job's end and the release of its open workspaces.
func (r *redisSys) finish(c *resp.Conn, id string, j *redisJob, status, reason, now string) {
	c.Append("HSET", "job:"+id, "state", status, "reason", reason, "finished_at", now)
	c.Append("SMOVE", "jobs:"+j.state, "jobs:"+status, id)
	for _, w := range j.open {
		c.Append("HSET", "ws:"+w, "state", "released", "released_at", now)
	}
	j.state, j.open = status, nil
}

func remove(list []string, s string) []string {
	for i, x := range list {
		if x == s {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// Read reads a job's hash, its attempts and its workspace ids in one
// pipeline.
func (r *redisSys) Read(ctx context.Context, jobID string) error {
	c, err := r.get()
	if err != nil {
		return err
	}
	c.Append("HGETALL", "job:"+jobID)
	c.Append("HGETALL", "att:"+jobID)
	c.Append("SMEMBERS", "jobws:"+jobID)
	_, err = r.exec(c)
	return err
}

// Checkpoint runs BGSAVE and waits until the background save is done. A
// save or AOF rewrite already running is waited out first.
func (r *redisSys) Checkpoint(ctx context.Context) error {
	c, err := r.get()
	if err != nil {
		return err
	}
	defer r.put(c)
	for {
		_, err := c.Do("BGSAVE")
		if err == nil {
			break
		}
		var re resp.Error
		if !errors.As(err, &re) || !strings.Contains(string(re), "in progress") {
			return err
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	for {
		v, err := c.Do("INFO", "persistence")
		if err != nil {
			return err
		}
		if strings.Contains(v.Str, "rdb_bgsave_in_progress:0") {
			if !strings.Contains(v.Str, "rdb_last_bgsave_status:ok") {
				return errors.New("redis: BGSAVE failed")
			}
			return nil
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// infoField returns one field of INFO section.
func (r *redisSys) infoField(section, field string) (int64, error) {
	c, err := r.get()
	if err != nil {
		return 0, err
	}
	v, err := c.Do("INFO", section)
	r.put(c)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(v.Str, "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok && k == field {
			return strconv.ParseInt(val, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis: INFO %s has no %s", section, field)
}

func (r *redisSys) Footprint() (int64, int64, error) {
	mem, err := r.infoField("memory", "used_memory")
	return mem, dirSize(r.dir), err
}

// Recover kills the server with SIGKILL and starts it again on the same
// files; it is back once PING answers PONG (not LOADING) and a first job
// read returns it.
func (r *redisSys) Recover(ctx context.Context, firstJob string) (time.Duration, error) {
	r.kill()
	start := time.Now()
	if err := r.start(); err != nil {
		return 0, err
	}
	if err := r.ready(ctx, 10*time.Minute); err != nil {
		return 0, err
	}
	c, err := r.get()
	if err != nil {
		return 0, err
	}
	v, err := c.Do("HGET", "job:"+firstJob, "state")
	r.put(c)
	if err != nil {
		return 0, err
	}
	if v.Null {
		return 0, fmt.Errorf("recover: job %s missing", firstJob)
	}
	return time.Since(start), nil
}

// kill stops the server with SIGKILL and waits for it.
func (r *redisSys) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
	r.cmd = nil
	r.drain()
}

// drain closes the pooled connections.
func (r *redisSys) drain() {
	for {
		select {
		case c := <-r.pool:
			c.Close()
		default:
			return
		}
	}
}

// Close stops the server: SIGTERM, then SIGKILL if it has not exited
// within ten seconds.
func (r *redisSys) Close() error {
	if r.cmd == nil {
		return nil
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		r.cmd = nil
		r.drain()
	case <-time.After(10 * time.Second):
		r.kill()
	}
	return nil
}
