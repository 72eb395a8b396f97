package pstate

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The sections of a snapshot body (layout in snapshot.go), decoded into a
// draft in build mode. Every check DecodeSnapshot promises is made here, as
// the bytes are read: the first failure is a *CorruptionError at the offset
// of the string, count or record at fault.

func (d *snapReader) state(seq uint64) (*draft, error) {
	if v := d.byte(); d.err == nil && v != snapshotVersion {
		return nil, d.corruptAt(0, fmt.Sprintf("unknown version %d", v), nil)
	}
	if got := d.uvarint(); d.err == nil && got != seq {
		return nil, d.corrupt(fmt.Sprintf("body holds seq %d, header %d", got, seq))
	}
	window := d.uvarint()
	if d.err == nil && (window < 1 || window > 1<<32) {
		return nil, d.corrupt(fmt.Sprintf("id window %d out of range", window))
	}
	if d.err != nil {
		return nil, d.err
	}
	b := newBuildDraft(seq, int(window))
	if err := d.jobs(b); err != nil {
		return nil, err
	}
	// The maps are filled on another goroutine while the next section is
	// read: workspaces find their job in the sorted jobs, not the map.
	jobsDone := background(func() { d.indexJobs(b) })
	err := d.workspaces()
	<-jobsDone
	if err != nil {
		return nil, err
	}
	if len(d.ws) != b.wsRefs {
		return nil, d.corrupt(fmt.Sprintf("jobs list %d workspaces, the body holds %d",
			b.wsRefs, len(d.ws)))
	}
	wsDone := background(func() { d.indexWorkspaces(b) })
	err = d.ids(b)
	<-wsDone
	if err != nil {
		return nil, err
	}
	if d.fill(1) {
		return nil, d.corrupt("trailing bytes after the last id")
	}
	if d.rerr != io.EOF {
		d.readErr(d.rerr)
		return nil, d.err
	}
	return b, nil
}

// background runs fn on a goroutine of its own; the channel is closed when
// it returns.
func background(fn func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	return done
}

// jobs reads the jobs into d.js, in ascending id order. indexJobs puts
// them into b's map, sized exactly: the count in the body is not trusted
// with an allocation, and a map grown one job at a time rehashes each job
// several times.
func (d *snapReader) jobs(b *draft) error {
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		start := d.offset()
		j := d.job()
		if d.err != nil {
			break
		}
		if i > 0 && j.id <= d.js[len(d.js)-1].id {
			return d.corruptAt(start, fmt.Sprintf("job %q not above %q", j.id,
				d.js[len(d.js)-1].id), nil)
		}
		d.js = append(d.js, j)
		b.wsRefs += len(j.workspaces)
	}
	return d.err
}

// indexJobs puts the jobs read into b's map and order.
func (d *snapReader) indexJobs(b *draft) {
	b.jobs = make(map[string]jobEntry, len(d.js))
	b.order = make([]string, len(d.js))
	for i, j := range d.js {
		b.jobs[j.id] = jobEntry{cur: j, attOwned: true, wsOwned: true}
		b.order[i] = j.id
	}
}

// job reads one job and checks its own consistency (what checkJob checks).
func (d *snapReader) job() *job {
	j := d.alloc.job()
	j.id = d.str("job_id", MaxIDBytes, true, true)
	d.jobID = j.id
	j.name = d.common("name", MaxNameBytes, false, true, d.last.name)
	j.worker = d.common("worker", MaxNameBytes, false, false, d.last.worker)
	j.reason = d.common("reason", MaxReasonBytes, false, false, d.last.reason)
	if s := d.byte(); d.err == nil {
		if s >= byte(numJobStates) {
			d.corruptAt(d.offset()-1, fmt.Sprintf("bad state byte %d", s), nil)
		}
		j.state = jobState(s)
	}
	j.submitted, j.started, j.finished = d.varint(), d.varint(), d.varint()
	d.jobLabels(j)
	d.jobSteps(j)
	d.jobAttempts(j)
	if n := d.count("workspaces", MaxJobWorkspaces); n > 0 {
		j.workspaces = d.alloc.strings(n)
		for range n {
			at := d.offset()
			w := d.str("workspaces", MaxIDBytes, true, true)
			if d.err == nil && containsStr(j.workspaces, w) {
				d.corruptAt(at, "workspaces", fmt.Errorf("workspace %q listed twice", w))
			}
			j.workspaces = append(j.workspaces, w)
		}
	}
	d.jobID = ""
	d.last.name, d.last.worker, d.last.reason = j.name, j.worker, j.reason
	return j
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jobLabels reads a job's labels: keys ascending, non-empty, without ':'.
func (d *snapReader) jobLabels(j *job) {
	if d.same(d.rawLabels) {
		j.labels = d.lastLabels
		return
	}
	start := d.offset()
	defer d.keep(&d.rawLabels, start)
	n := d.count("labels", MaxLabels)
	if n == 0 {
		d.lastLabels = nil
		return
	}
	d.scrL = d.scrL[:0]
	for i := range n {
		at := d.offset()
		var hint label
		if i < len(d.lastLabels) {
			hint = d.lastLabels[i]
		}
		k := d.common("labels", MaxLabelKey, true, true, hint.key)
		v := d.common("labels", MaxLabelValue, false, false, hint.value)
		if d.err != nil {
			return
		}
		if strings.IndexByte(k, ':') >= 0 {
			d.corruptAt(at, "labels", fmt.Errorf("key %q holds ':'", k))
			return
		}
		if i > 0 && k <= d.scrL[i-1].key {
			d.corruptAt(at, "labels", fmt.Errorf("label keys not ascending"))
			return
		}
		d.scrL = append(d.scrL, label{k, v})
	}
	j.labels = d.shareLabels()
	d.lastLabels = j.labels
}

// jobSteps reads a job's declared steps: at least one, each named once.
func (d *snapReader) jobSteps(j *job) {
	if d.same(d.rawSteps) {
		j.steps = d.lastSteps
		return
	}
	start := d.offset()
	defer d.keep(&d.rawSteps, start)
	n := d.count("steps", MaxSteps)
	if d.err != nil {
		return
	}
	if n == 0 {
		d.corruptAt(start, "steps", fmt.Errorf("no steps"))
		return
	}
	d.scrS = d.scrS[:0]
	for i := range n {
		hint := ""
		if i < len(d.lastSteps) {
			hint = d.lastSteps[i]
		}
		d.scrS = append(d.scrS, d.common("steps", MaxIDBytes, true, true, hint))
	}
	if d.err == nil {
		j.steps = d.shareSteps(start)
		d.lastSteps = j.steps
	}
}

// jobAttempts reads a job's attempts: each of a declared step, numbered 1,
// 2, ... per step, and only a step's last attempt may still be running.
// fastAttempts decodes runs of them straight from the buffer; whatever it
// leaves (an attempt cut by the buffer's end, or one with any fault) is
// read here with the checked reads, which name the fault.
func (d *snapReader) jobAttempts(j *job) {
	n := d.count("attempts", MaxSteps*MaxAttempt)
	if n == 0 || d.err != nil {
		return
	}
	room := n
	if !j.state.terminal() {
		room += spareAttempts
	}
	j.attempts = d.alloc.attempts(room)
	clear(d.next[:len(j.steps)])
	clear(d.running[:len(j.steps)])
	for len(j.attempts) < n {
		if d.fastAttempts(j, n); len(j.attempts) == n {
			return
		}
		at := d.offset()
		var a attempt
		step := d.count("step index", MaxSteps)
		a.num = uint32(d.count("attempt", MaxAttempt))
		a.status = d.byte()
		a.started, a.finished = d.varint(), d.varint()
		exit := d.varint()
		if d.err != nil {
			return
		}
		if err := d.checkAttempt(j, step, a, exit); err != nil {
			d.corruptAt(at, "attempts", err)
			return
		}
		a.step, a.exit = uint16(step), int32(exit)
		d.next[step], d.running[step] = a.num, a.status == asRunning
		j.attempts = append(j.attempts, a)
	}
}

// checkAttempt checks one attempt of j against the ones before it.
func (d *snapReader) checkAttempt(j *job, step int, a attempt, exit int64) error {
	switch {
	case step >= len(j.steps):
		return fmt.Errorf("attempt of undeclared step %d", step)
	case a.num != d.next[step]+1 || d.running[step]:
		return fmt.Errorf("step %q: attempt %d out of order", j.steps[step], a.num)
	case a.status > asSkipped:
		return fmt.Errorf("step %q: bad status byte %d", j.steps[step], a.status)
	case exit < minExitCode || exit > maxExitCode:
		return fmt.Errorf("exit code out of range")
	}
	return nil
}

// maxAttemptBytes is the most bytes an attempt takes: five varints and
// the status byte.
const maxAttemptBytes = 5*binary.MaxVarintLen64 + 1

// fastAttempts appends to j.attempts, up to n, the attempts held whole by
// the buffer that are sound: varints in their shortest form, the checks of
// checkAttempt passed. It stops before any other, leaving it unread.
func (d *snapReader) fastAttempts(j *job, n int) {
	if d.err != nil || len(d.buf)-d.pos < maxAttemptBytes && !d.fill(maxAttemptBytes) {
		return
	}
	b, p := d.buf, d.pos
	atts, nsteps := j.attempts, len(j.steps)
	for len(atts) < n && len(b)-p >= maxAttemptBytes {
		// Step index, attempt number and status: one byte each (the
		// index and number while below 128); then the three varints.
		step, num, status := int(b[p]), uint32(b[p+1]), b[p+2]
		if step >= 0x80 || num >= 0x80 || step >= nsteps || status > asSkipped ||
			num != d.next[step]+1 || d.running[step] {
			break
		}
		started, k1 := fastUvarint(b, p+3)
		finished, k2 := fastUvarint(b, p+3+k1)
		exit, k3 := fastUvarint(b, p+3+k1+k2)
		if k1 == 0 || k2 == 0 || k3 == 0 {
			break
		}
		x := zigzag(exit)
		if x < minExitCode || x > maxExitCode {
			break
		}
		atts = append(atts, attempt{started: zigzag(started), finished: zigzag(finished),
			num: num, exit: int32(x), step: uint16(step), status: status})
		d.next[step], d.running[step] = num, status == asRunning
		p += 3 + k1 + k2 + k3
	}
	j.attempts, d.pos = atts, p
}

func zigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// workspaces reads the workspaces into d.ws, in ascending id order; each
// one's job must list it. Its id and job id are the strings its job holds.
func (d *snapReader) workspaces() error {
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		start := d.offset()
		w := d.workspace()
		if d.err != nil {
			break
		}
		if i > 0 && w.id <= d.ws[len(d.ws)-1].id {
			return d.corruptAt(start, fmt.Sprintf("workspace %q not above %q", w.id,
				d.ws[len(d.ws)-1].id), nil)
		}
		d.ws = append(d.ws, w)
	}
	return d.err
}

// indexWorkspaces puts the workspaces read into b's map and order.
func (d *snapReader) indexWorkspaces(b *draft) {
	b.ws = make(map[string]wsEntry, len(d.ws))
	b.wsOrd = make([]string, len(d.ws))
	for i, w := range d.ws {
		b.ws[w.id] = wsEntry{cur: w}
		b.wsOrd[i] = w.id
	}
}

// findJob returns the index in d.js of the job with id, or -1. It tries
// the job after the last one found first: workspaces named after their
// jobs come in the jobs' order.
func (d *snapReader) findJob(id []byte) int {
	for _, i := range [2]int{d.lastJob + 1, d.lastJob} {
		if i >= 0 && i < len(d.js) && d.js[i].id == string(id) {
			d.lastJob = i
			return i
		}
	}
	i, ok := slices.BinarySearchFunc(d.js, id, func(j *job, id []byte) int {
		return strings.Compare(j.id, string(id))
	})
	if !ok {
		return -1
	}
	d.lastJob = i
	return i
}

func (d *snapReader) workspace() *workspace {
	start := d.offset()
	d.scrID = append(d.scrID[:0], d.text("workspace_id", MaxIDBytes, true, true)...)
	jobID := d.text("job_id", MaxIDBytes, true, true)
	if d.err != nil {
		return nil
	}
	ji := d.findJob(jobID)
	if ji < 0 {
		d.corruptAt(start, "workspace", fmt.Errorf("workspace %q: unknown job %q",
			d.scrID, jobID))
		return nil
	}
	j := d.js[ji]
	k := -1
	for i, id := range j.workspaces {
		if id == string(d.scrID) {
			k = i
			break
		}
	}
	if k < 0 {
		d.corruptAt(start, "workspace", fmt.Errorf("workspace %q: job %q does not list it",
			d.scrID, j.id))
		return nil
	}
	w := d.alloc.workspace()
	w.id, w.jobID = j.workspaces[k], j.id
	w.path = d.str("path", MaxPathBytes, false, false)
	switch d.byte() {
	case 0:
	case 1:
		w.isReleased = true
	default:
		if d.err == nil {
			d.corruptAt(d.offset()-1, "bad released byte", nil)
		}
	}
	w.allocated, w.released = d.varint(), d.varint()
	return w
}

// snapID is an event id of the window as read, before it is indexed.
type snapID struct {
	id  string
	seq uint64
	at  int64
}

// ids reads the id window. The ids are gathered first and indexed at the
// end, in a map sized exactly.
func (d *snapReader) ids(b *draft) error {
	n := d.uvarint()
	if d.err == nil && n > uint64(b.ids.max) {
		return d.corrupt(fmt.Sprintf("%d ids, more than the window %d", n, b.ids.max))
	}
	var ids []snapID
	for i := uint64(0); i < n && d.err == nil; i++ {
		at := d.offset()
		id := d.str("event id", MaxIDBytes, true, true)
		seq := d.uvarint()
		if d.err != nil {
			break
		}
		if seq == 0 || seq > b.seq {
			return d.corruptAt(at, "event id", fmt.Errorf("id %q: seq %d outside 1..%d",
				id, seq, b.seq))
		}
		if len(ids) > 0 && seq <= ids[len(ids)-1].seq {
			return d.corruptAt(at, "event id", fmt.Errorf(
				"id %q: seq %d not above the previous id's %d", id, seq, ids[len(ids)-1].seq))
		}
		ids = append(ids, snapID{id, seq, at})
	}
	if d.err != nil {
		return d.err
	}
	b.index = newIDIndex(len(ids))
	for _, x := range ids {
		if _, dup := b.applied(x.id); dup {
			return d.corruptAt(x.at, "event id", fmt.Errorf("id %q held twice", x.id))
		}
		b.addID(x.id, x.seq)
	}
	return nil
}
