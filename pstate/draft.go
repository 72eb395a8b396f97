package pstate

import (
	"slices"
)

// jobEntry is a job the draft changed: old is the job in the base root (nil:
// none), cur the job now (nil: purged). cur is private to the draft;
// attOwned and wsOwned say its attempts and workspaces slices are too
// (else they are still shared with old and are copied before a change).
type jobEntry struct {
	old, cur          *job
	attOwned, wsOwned bool
}

// wsEntry is a workspace the draft changed; cur nil: dropped. Workspaces
// are small: every change makes a new one.
type wsEntry struct{ old, cur *workspace }

// undo restores one draft entry when a request is refused: the entry as it
// was (had false: there was none), and for a job the draft already owned,
// its value (or, when att >= 0, one attempt of it).
type undo struct {
	id     string
	isWS   bool
	had    bool
	job    jobEntry
	jobVal job
	att    int
	attVal attempt
	ws     wsEntry
}

// indexUndo restores one entry of the id index: an id added (where 0) is
// dropped again, an id dropped from where (1 by hash, 2 extra) comes back.
type indexUndo struct {
	id     string
	h, pos uint64
	where  int8
	extra  bool // an added id went to extra
}

// draft is a mutable state over an immutable root, used by one goroutine for
// one group of events. Jobs and workspaces the group changes live in small
// Go maps owned by the draft: a job is copied once when first touched, with
// spare capacity in the slices it changes, then changed in place; reads go
// through the draft to the base. commit makes the next root with one
// persistent Set per changed job and workspace and the index changes
// computed from (old, cur). Nothing reachable from base is ever written.
//
// With build set (recovery), the base is empty and the maps hold the whole
// state; build makes the root with the maps' builders.
type draft struct {
	base  *State
	seq   uint64
	jobs  map[string]jobEntry
	ws    map[string]wsEntry
	ids   idWindow
	index *idIndex // id -> position; nil: look ids up in the window

	// Undo records of the current request, when record is set.
	record  bool
	undos   []undo
	claims  []claim
	idxUndo []indexUndo

	build  bool
	order  []string // build: job ids in ascending order (from a snapshot)
	added  []string // build: job ids submitted since, unordered
	wsOrd  []string
	wsAdd  []string
	wsRefs int
}

func newDraft(base *State, index *idIndex) *draft {
	return &draft{base: base, seq: base.seq, ids: base.ids, index: index,
		jobs: make(map[string]jobEntry), ws: make(map[string]wsEntry)}
}

// reset makes d a fresh draft over base, keeping its maps' storage.
func (d *draft) reset(base *State) {
	d.base, d.seq, d.ids = base, base.seq, base.ids
	clear(d.jobs)
	clear(d.ws)
	d.undos, d.claims, d.idxUndo = d.undos[:0], d.claims[:0], d.idxUndo[:0]
}

// release empties d and drops its references to any state.
func (d *draft) release() {
	d.reset(&State{})
	d.base = nil
}

// job returns the job with id as the draft holds it (read only).
func (d *draft) job(id string) (*job, bool) {
	if e, ok := d.jobs[id]; ok {
		return e.cur, e.cur != nil
	}
	return d.base.jobs.Get(id)
}

// workspace returns the workspace with id as the draft holds it.
func (d *draft) workspace(id string) (*workspace, bool) {
	if e, ok := d.ws[id]; ok {
		return e.cur, e.cur != nil
	}
	return d.base.ws.Get(id)
}

// applied returns the seq of the event with id, if the window holds it.
func (d *draft) applied(id string) (uint64, bool) {
	if id == "" {
		return 0, false
	}
	return d.appliedHash(id, hashID(id))
}

// appliedHash is applied for an id whose hash is h.
func (d *draft) appliedHash(id string, h uint64) (uint64, bool) {
	if d.index == nil {
		return d.ids.find(id)
	}
	pos, ok := d.index.lookup(&d.ids, id, h)
	if !ok {
		return 0, false
	}
	_, seq := d.ids.at(pos)
	return seq, true
}

// entry returns the draft's entry for job id, recording an undo.
func (d *draft) entry(id string) (jobEntry, bool) {
	e, had := d.jobs[id]
	if d.record {
		u := undo{id: id, had: had, job: e, att: -1}
		if had && e.cur != nil {
			u.jobVal = *e.cur
		}
		d.undos = append(d.undos, u)
	}
	return e, had
}

// touch returns job id, private to the draft, to change in place. The job
// must exist. attempts and workspaces say which slices will change.
func (d *draft) touch(id string, attempts, workspaces bool) *job {
	e, had := d.entry(id)
	if had && (e.attOwned || !attempts) && (e.wsOwned || !workspaces) {
		return e.cur // the common case in a long group: nothing to copy
	}
	if !had {
		e.old, _ = d.base.jobs.Get(id)
		c := *e.old
		e.cur = &c
	}
	if attempts && !e.attOwned {
		e.cur.attempts = growCopy(e.cur.attempts)
		e.attOwned = true
	}
	if workspaces && !e.wsOwned {
		e.cur.workspaces = growCopy(e.cur.workspaces)
		e.wsOwned = true
	}
	d.jobs[id] = e
	return e.cur
}

// growCopy copies s with a little spare capacity, so the next appends of
// the group do not copy again.
func growCopy[T any](s []T) []T {
	c := make([]T, len(s), len(s)+4)
	copy(c, s)
	return c
}

// setJob puts a new job (submitted) or nil (purged) under id.
func (d *draft) setJob(id string, j *job) {
	e, had := d.entry(id)
	if !had {
		e.old, _ = d.base.jobs.Get(id)
		if d.build && j != nil {
			d.added = append(d.added, id)
		}
	} else if d.build && j != nil && e.cur == nil {
		d.added = append(d.added, id) // purged, now submitted again
	}
	e.cur, e.attOwned, e.wsOwned = j, true, true
	d.jobs[id] = e
}

// setAttempt changes attempt i of a touched job, recording an undo.
func (d *draft) setAttempt(j *job, i int, a attempt) {
	if d.record {
		d.undos = append(d.undos, undo{id: j.id, had: true, att: i, attVal: j.attempts[i]})
	}
	j.attempts[i] = a
}

// setWS puts workspace w (nil: dropped) under id.
func (d *draft) setWS(id string, w *workspace) {
	e, had := d.ws[id]
	if d.record {
		d.undos = append(d.undos, undo{id: id, isWS: true, had: had, ws: e, att: -1})
	}
	if !had {
		e.old, _ = d.base.ws.Get(id)
		if d.build && w != nil {
			d.wsAdd = append(d.wsAdd, id)
		}
	} else if d.build && w != nil && e.cur == nil {
		d.wsAdd = append(d.wsAdd, id)
	}
	e.cur = w
	d.ws[id] = e
}

// addID remembers an event id at seq; an id already held keeps its seq.
func (d *draft) addID(id string, seq uint64) { d.addIDHash(id, hashID(id), seq) }

// addIDHash is addID for an id whose hash is h.
func (d *draft) addIDHash(id string, h, seq uint64) {
	var taken bool
	if d.index == nil {
		if _, held := d.ids.find(id); held {
			return
		}
	} else {
		var held bool
		if _, held, taken = d.index.find(&d.ids, id, h); held {
			return
		}
	}
	var claims *[]claim
	if d.record {
		claims = &d.claims
	}
	pos := d.ids.end
	var old string
	var oldH uint64
	if d.index != nil && d.ids.len() >= d.ids.max {
		// The oldest entry goes: read it while its chunk is in reach.
		old, _ = d.ids.at(d.ids.start)
		oldH = d.ids.hashAt(d.ids.start)
	}
	oldPos, evicted := d.ids.push(id, h, seq, claims)
	if d.index == nil {
		return
	}
	if evicted {
		// The evicted entry is no longer in the window: drop it from
		// the index (unless the id came back later, at another position).
		if where := d.index.drop(old, oldH, oldPos); where != 0 && d.record {
			d.idxUndo = append(d.idxUndo, indexUndo{id: old, h: oldH, pos: oldPos,
				where: int8(where)})
		}
		_, taken = d.index.byHash.get(h) // the drop may have freed h
	}
	extra := d.index.put(id, h, pos, taken)
	if d.record {
		d.idxUndo = append(d.idxUndo, indexUndo{id: id, h: h, pos: pos, extra: extra})
	}
}

// mark is where a request began in the draft, for rollback.
type mark struct {
	seq                  uint64
	ids                  idWindow
	undos, claims, index int
}

func (d *draft) mark() mark {
	return mark{seq: d.seq, ids: d.ids, undos: len(d.undos), claims: len(d.claims),
		index: len(d.idxUndo)}
}

// rollback undoes everything since m: the draft is as it was then.
func (d *draft) rollback(m mark) {
	for i := len(d.undos) - 1; i >= m.undos; i-- {
		u := &d.undos[i]
		switch {
		case u.isWS && u.had:
			d.ws[u.id] = u.ws
		case u.isWS:
			delete(d.ws, u.id)
		case u.att >= 0:
			e := d.jobs[u.id]
			e.cur.attempts[u.att] = u.attVal
		case u.had:
			if u.job.cur != nil {
				*u.job.cur = u.jobVal
			}
			d.jobs[u.id] = u.job
		default:
			delete(d.jobs, u.id)
		}
	}
	for i := len(d.claims) - 1; i >= m.claims; i-- {
		d.claims[i].c.filled.Store(d.claims[i].slot)
	}
	for i := len(d.idxUndo) - 1; i >= m.index; i-- {
		u := d.idxUndo[i]
		switch {
		case u.where == 1:
			d.index.byHash.set(u.h, u.pos)
		case u.where == 2:
			d.index.extra[u.id] = u.pos
		case u.extra:
			delete(d.index.extra, u.id)
		default:
			d.index.byHash.del(u.h)
		}
	}
	d.seq, d.ids = m.seq, m.ids
	d.undos, d.claims, d.idxUndo = d.undos[:m.undos], d.claims[:m.claims], d.idxUndo[:m.index]
}

// accept ends a request: its changes stay, its undo records go.
func (d *draft) accept() {
	d.undos, d.claims, d.idxUndo = d.undos[:0], d.claims[:0], d.idxUndo[:0]
}

// commit returns the root holding the draft's changes over base.
func (d *draft) commit() *State {
	if d.build {
		return d.buildState()
	}
	n := *d.base
	n.seq, n.ids = d.seq, d.ids
	if len(d.jobs) == 0 && len(d.ws) == 0 {
		return &n
	}
	own := func() {
		// The first index change gets the root its own indexes struct.
		if n.indexes == d.base.indexes {
			x := *d.base.indexes
			n.indexes = &x
		}
	}
	for id, e := range d.jobs {
		switch {
		case e.cur != nil:
			n.jobs = n.jobs.Set(id, e.cur)
		case e.old != nil:
			n.jobs = n.jobs.Delete(id)
		}
		if indexChanges(e.old, e.cur) {
			own()
			n.reindexJob(id, e.old, e.cur)
		}
	}
	if len(d.ws) > 0 {
		own()
	}
	for id, e := range d.ws {
		switch {
		case e.cur != nil:
			n.ws = n.ws.Set(id, e.cur)
		case e.old != nil:
			n.ws = n.ws.Delete(id)
		}
		switch {
		case e.old != nil && e.cur != nil && e.old.isReleased == e.cur.isReleased:
		default:
			if e.old != nil {
				n.wsByState[e.old.stateIndex()] = n.wsByState[e.old.stateIndex()].Delete(id)
			}
			if e.cur != nil {
				i := e.cur.stateIndex()
				n.wsByState[i] = n.wsByState[i].Set(id, struct{}{})
			}
		}
	}
	return &n
}

// indexChanges reports whether a job going from old to cur changes any
// sorted set: not for a step event, the common case.
func indexChanges(old, cur *job) bool {
	return old == nil || cur == nil || old.state != cur.state ||
		old.finished != cur.finished || !slices.Equal(old.labels, cur.labels)
}

// reindexJob updates the sorted sets for job id going from old to cur
// (either may be nil). n's indexes are its own.
func (n *State) reindexJob(id string, old, cur *job) {
	if (old == nil) != (cur == nil) {
		if cur != nil {
			n.jobIDs = n.jobIDs.Set(id, struct{}{})
		} else {
			n.jobIDs = n.jobIDs.Delete(id)
		}
	}
	if old == nil || cur == nil || old.state != cur.state {
		if old != nil {
			n.byState[old.state] = n.byState[old.state].Delete(id)
		}
		if cur != nil {
			n.byState[cur.state] = n.byState[cur.state].Set(id, struct{}{})
		}
	}
	oldKey, curKey := "", ""
	if old != nil && old.state.terminal() {
		oldKey = finishKey(old.finished, id)
	}
	if cur != nil && cur.state.terminal() {
		curKey = finishKey(cur.finished, id)
	}
	if oldKey != curKey {
		if oldKey != "" {
			n.finished = n.finished.Delete(oldKey)
		}
		if curKey != "" {
			n.finished = n.finished.Set(curKey, struct{}{})
		}
	}
	if old != nil && cur != nil && slices.Equal(old.labels, cur.labels) {
		return
	}
	if old != nil {
		for _, l := range old.labels {
			n.labelIndex(l, func(m *idSet) *idSet { return m.Delete(id) })
		}
	}
	if cur != nil {
		for _, l := range cur.labels {
			n.labelIndex(l, func(m *idSet) *idSet { return m.Set(id, struct{}{}) })
		}
	}
}
