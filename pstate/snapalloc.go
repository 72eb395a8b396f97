package pstate

import "unsafe"

// snapAlloc hands out the jobs, workspaces, attempt histories, workspace
// lists and strings of a snapshot being decoded from slabs: one allocation
// serves hundreds of jobs, which cuts the decoder's time and the
// collector's work (fewer objects to mark) by several times.
//
// Each piece is a distinct part of its slab, and a slice's capacity ends
// where its part ends, so an append past it copies instead of writing into
// a neighbour. Strings point into an arena whose bytes are written once,
// before the string is made, and never again.
//
// NB: a slab stays in memory while any piece of it is reachable: a job that
// never changes keeps its slab (256 jobs) alive after the others were
// changed (copied) or purged. The memory so held is at most what the
// snapshot's state took when it was loaded.
type snapAlloc struct {
	jobs  []job
	ws    []workspace
	atts  []attempt
	lists []string
	arena []byte
}

const (
	slabJobs     = 256
	slabAttempts = 4096
	slabStrings  = 1024
	arenaSize    = 64 << 10
	// Larger pieces get an allocation of their own.
	maxSlabAttempts = slabAttempts / 4
	maxSlabStrings  = slabStrings / 4
	maxArenaString  = 1 << 10
)

// spareAttempts is the room left after the attempts of a job that has not
// finished, for the step events the log holds after the snapshot: replay
// appends to them in place. A finished job's attempts never change.
const spareAttempts = 4

// grown is the size of the next slab after one of size n: small
// snapshots get small slabs, large ones soon reach size limit.
func grown(n, limit int) int { return min(limit, max(16, 2*n)) }

func (a *snapAlloc) job() *job {
	if len(a.jobs) == cap(a.jobs) {
		a.jobs = make([]job, 0, grown(cap(a.jobs), slabJobs))
	}
	a.jobs = a.jobs[:len(a.jobs)+1]
	return &a.jobs[len(a.jobs)-1]
}

func (a *snapAlloc) workspace() *workspace {
	if len(a.ws) == cap(a.ws) {
		a.ws = make([]workspace, 0, grown(cap(a.ws), slabJobs))
	}
	a.ws = a.ws[:len(a.ws)+1]
	return &a.ws[len(a.ws)-1]
}

// attempts returns an empty slice with room for n attempts (n comes from
// the body: a large n gets room for 1024 and grows as attempts are read).
func (a *snapAlloc) attempts(n int) []attempt {
	return carve(&a.atts, n, slabAttempts, maxSlabAttempts)
}

// strings returns an empty slice with room for n strings, as attempts does.
func (a *snapAlloc) strings(n int) []string {
	return carve(&a.lists, n, slabStrings, maxSlabStrings)
}

// carve cuts an empty slice with room for n from the slab *s, starting a
// new slab (of up to limit) when it lacks the room; n above most gets a
// slice of its own with room for most.
func carve[T any](s *[]T, n, limit, most int) []T {
	if n > most {
		return make([]T, 0, most)
	}
	if cap(*s)-len(*s) < n {
		*s = make([]T, 0, max(n, grown(cap(*s), limit)))
	}
	k := len(*s)
	*s = (*s)[:k+n]
	return (*s)[k : k : k+n]
}

// str returns b as a string held by the arena.
func (a *snapAlloc) str(b []byte) string {
	switch {
	case len(b) == 0:
		return ""
	case len(b) > maxArenaString:
		return string(b)
	case cap(a.arena)-len(a.arena) < len(b):
		a.arena = make([]byte, 0, max(len(b), grown(cap(a.arena), arenaSize)))
	}
	k := len(a.arena)
	a.arena = append(a.arena, b...)
	return unsafe.String(&a.arena[k], len(b))
}
