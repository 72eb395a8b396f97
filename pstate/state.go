package pstate

import (
	"encoding/binary"
	"hash/maphash"
	"strings"

	"github.com/benbjohnson/immutable"
)

// jobState is a job's state; the number is also its byte in snapshots.
type jobState uint8

const (
	jsQueued jobState = iota
	jsRunning
	jsSucceeded
	jsFailed
	jsCanceled
	numJobStates
)

var jobStateNames = [numJobStates]string{
	StateQueued, StateRunning, StateSucceeded, StateFailed, StateCanceled,
}

func (s jobState) terminal() bool { return s >= jsSucceeded }

func parseJobState(s string) (jobState, bool) {
	for i, n := range jobStateNames {
		if n == s {
			return jobState(i), true
		}
	}
	return 0, false
}

// ValidJobState reports whether s names a job state (for the API's ?state=).
func ValidJobState(s string) bool { _, ok := parseJobState(s); return ok }

// ValidWorkspaceState reports whether s names a workspace state.
func ValidWorkspaceState(s string) bool { return s == StateAllocated || s == StateReleased }

// Attempt statuses share their numbers with the log's status bytes.
const (
	asRunning   uint8 = 0
	asSucceeded uint8 = 1
	asFailed    uint8 = 2
	asSkipped   uint8 = 3
)

// attempt is one attempt of one step: 32 bytes, held by value.
type attempt struct {
	started  int64 // Unix nanoseconds
	finished int64 // 0 while running
	num      uint32
	exit     int32
	step     uint16 // index into job.steps
	status   uint8
}

type label struct{ key, value string }

// job is the state of one job. A *job reachable from a published root is
// never modified: a change copies the struct and only the slices it alters.
// steps and labels never change after submission and are shared by every
// copy.
type job struct {
	id, name, worker, reason string
	labels                   []label  // sorted by key
	steps                    []string // declared order
	attempts                 []attempt
	workspaces               []string // ids, in allocation order
	submitted, started       int64
	finished                 int64
	state                    jobState
}

// lastAttempt returns the index in j.attempts of step's last attempt, or -1.
func (j *job) lastAttempt(step int) int {
	for i := len(j.attempts) - 1; i >= 0; i-- {
		if int(j.attempts[i].step) == step {
			return i
		}
	}
	return -1
}

func (j *job) stepIndex(name string) int {
	for i, s := range j.steps {
		if s == name {
			return i
		}
	}
	return -1
}

// workspace is the state of one workspace; never modified once published.
type workspace struct {
	id, jobID, path     string
	allocated, released int64
	isReleased          bool
}

func (w *workspace) stateName() string {
	if w.isReleased {
		return StateReleased
	}
	return StateAllocated
}

func (w *workspace) stateIndex() int {
	if w.isReleased {
		return 1
	}
	return 0
}

// idSet is a sorted set of ids.
type idSet = immutable.SortedMap[string, struct{}]

// State is an immutable root: every method reads, none changes it, and
// nothing it reads is ever modified (id window slots past its end may be
// written: it never reads them). Apply returns a new State
// sharing all it did not change.
//
// Jobs live in a hash map (a step event costs one hash-map update); the
// listing order comes from jobIDs, a sorted set changed only when a job is
// submitted or purged. byState and byLabel ("k:v") are sorted sets of job
// ids so a filtered listing seeks instead of scanning; finished orders
// finished jobs by finish time for purging.
type State struct {
	seq  uint64
	jobs *immutable.Map[string, *job]
	*indexes
	ids idWindow
}

// indexes are the sorted sets beside the jobs map, apart so that a step
// event (which changes none) copies a small State. Shared between roots;
// apply copies the struct before changing a field.
type indexes struct {
	jobIDs    *idSet
	byState   [numJobStates]*idSet
	byLabel   *immutable.Map[string, *idSet]
	finished  *idSet // finishKey(finished, id)
	ws        *immutable.SortedMap[string, *workspace]
	wsByState [2]*idSet // allocated, released
}

// DefaultIDWindow is how many event ids a state remembers to answer
// duplicates: the ids of the last DefaultIDWindow events that carried one.
const DefaultIDWindow = 1 << 20

// NewState returns the empty state at seq 0, remembering DefaultIDWindow ids.
func NewState() *State { return NewStateWithIDWindow(DefaultIDWindow) }

// NewStateWithIDWindow returns the empty state remembering the ids of the
// last n events that carried one (n >= 1; smaller values mean 1). The window
// is part of the state: snapshots carry it.
func NewStateWithIDWindow(n int) *State {
	s := &State{
		jobs: immutable.NewMap[string, *job](strHasher{}),
		indexes: &indexes{
			jobIDs:   newIDSet(),
			byLabel:  immutable.NewMap[string, *idSet](strHasher{}),
			finished: newIDSet(),
			ws:       immutable.NewSortedMap[string, *workspace](strComparer{}),
		},
		ids: newIDWindow(n),
	}
	for i := range s.byState {
		s.byState[i] = newIDSet()
	}
	for i := range s.wsByState {
		s.wsByState[i] = newIDSet()
	}
	return s
}

func newIDSet() *idSet { return immutable.NewSortedMap[string, struct{}](strComparer{}) }

// Seq is the seq of the last event applied.
func (s *State) Seq() uint64 { return s.seq }

// IDWindow is how many event ids the state remembers.
func (s *State) IDWindow() int { return s.ids.max }

// Applied returns the seq of the event with id, if it is still remembered.
// It looks through the window's chunks, O(IDWindow/1024): the engine and
// Recovery answer duplicates from an index of their own.
func (s *State) Applied(id string) (seq uint64, ok bool) {
	if id == "" {
		return 0, false
	}
	return s.ids.find(id)
}

// Counts holds how many jobs and workspaces are in each state; its JSON is
// the "jobs" and "workspaces" members of GET /v1/status.
type Counts struct {
	Jobs       JobCounts       `json:"jobs"`
	Workspaces WorkspaceCounts `json:"workspaces"`
}

// JobCounts counts jobs by state.
type JobCounts struct {
	Queued    uint64 `json:"queued"`
	Running   uint64 `json:"running"`
	Succeeded uint64 `json:"succeeded"`
	Failed    uint64 `json:"failed"`
	Canceled  uint64 `json:"canceled"`
}

// WorkspaceCounts counts workspaces by state.
type WorkspaceCounts struct {
	Allocated uint64 `json:"allocated"`
	Released  uint64 `json:"released"`
}

// Counts returns the counts by state; O(1).
func (s *State) Counts() Counts {
	n := func(m *idSet) uint64 { return uint64(m.Len()) }
	return Counts{
		Jobs: JobCounts{
			Queued: n(s.byState[jsQueued]), Running: n(s.byState[jsRunning]),
			Succeeded: n(s.byState[jsSucceeded]), Failed: n(s.byState[jsFailed]),
			Canceled: n(s.byState[jsCanceled]),
		},
		Workspaces: WorkspaceCounts{
			Allocated: n(s.wsByState[0]), Released: n(s.wsByState[1]),
		},
	}
}

// Meta returns the seq and the counts as a flat map ("jobs.queued", ...,
// "workspaces.released"), for a snapshot's header.
func (s *State) Meta() (seq uint64, counts map[string]uint64) {
	counts = make(map[string]uint64, len(metaJobKeys)+len(metaWorkspaceKeys))
	for i, k := range metaJobKeys {
		counts[k] = uint64(s.byState[i].Len())
	}
	for i, k := range metaWorkspaceKeys {
		counts[k] = uint64(s.wsByState[i].Len())
	}
	return s.seq, counts
}

// The keys of Meta's counts, built once: a checkpoint's capture calls Meta
// and should cost a few map writes, not string concatenations.
var (
	metaJobKeys = func() (k [numJobStates]string) {
		for i, name := range jobStateNames {
			k[i] = "jobs." + name
		}
		return k
	}()
	metaWorkspaceKeys = [2]string{"workspaces." + StateAllocated, "workspaces." + StateReleased}
)

// finishKey orders finished jobs by finish time, then id: 8 bytes of the
// time (sign bit flipped so negative times sort first), then the id.
func finishKey(nanos int64, id string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(nanos)^(1<<63))
	return string(b[:]) + id
}

func parseFinishKey(k string) (nanos int64, id string) {
	return int64(binary.BigEndian.Uint64([]byte(k[:8])) ^ (1 << 63)), k[8:]
}

// hashSeed is random per process: the hash map's layout never shows in any
// output (listings and snapshots follow sorted sets), and a random seed
// keeps crafted ids from colliding on purpose.
var hashSeed = maphash.MakeSeed()

type strHasher struct{}

func (strHasher) Hash(k string) uint32   { return uint32(maphash.String(hashSeed, k)) }
func (strHasher) Equal(a, b string) bool { return a == b }

type strComparer struct{}

func (strComparer) Compare(a, b string) int { return strings.Compare(a, b) }
