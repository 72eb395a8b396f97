// Package pstate holds the live state of the job system: events, their two
// encodings, the immutable state they build, the rules that accept or refuse
// them, the effects they cause, snapshots of the state, and the Engine that
// runs them through the log.
//
// # Events
//
// An Event is one of the contract's eight types. DecodeEvents reads the
// API's JSON (one event, or {"events": [...]} with 1 to 1000); the HTTP
// layer bounds the body at 1 MiB. Decoding is strict and every refusal is an
// *InputError naming the event's index and the field:
//
//   - unknown types and unknown fields; a known field on a type that does not
//     carry it ("exit_code" on job.purged);
//   - missing fields: job.submitted needs job_id, name and at least one step;
//     job.started needs worker; step events need step and attempt;
//     step.finished and job.finished need status; labels, exit_code and
//     reason are optional; id and time are optional everywhere;
//   - null, empty strings, wrong JSON types, fractions and exponents in
//     integers, attempt outside 1..1000, exit_code outside 32 bits, times
//     that are not RFC 3339 or fall outside 1678..2261;
//   - invalid UTF-8; control characters in identifiers (ids, step names,
//     label keys) and NUL anywhere;
//   - sizes: ids, job_id, workspace_id and step names at most 128 bytes, name
//     and worker 256, reason 1024, path 4096, label keys 128 (no ':', so the
//     "k:v" filter is unambiguous) and values 256; at most 256 steps (unique
//     names) and 64 labels.
//
// A missing time is filled with the engine's clock before the event is
// logged, so the log always carries the time and replay is exact.
//
// The log holds each event in a compact tagged binary encoding (codec.go
// draws it): a version byte, a type byte, a flags byte (bit 0: effect), then
// (tag, value) pairs in ascending tag order with uvarint lengths and zigzag
// varints. We chose it over JSON because it is several times smaller and
// faster to decode on replay, carries the effect flag outside the API's
// field set, and is canonical: a decoder refuses zero values, repeated or
// unordered tags and non-minimal varints, so every event has one encoding
// and a fuzzer can check encode(decode(b)) round trips. Tags and type
// numbers never change; a new field gets a new tag and a new version byte
// only if old decoders must refuse it.
//
// # State
//
// A *State is an immutable root. Jobs live in an immutable hash map of *job;
// a job holds plain slices (declared steps, a flat list of attempts, its
// workspace ids) and is copied on write: a change copies the job struct and
// only the slice it alters, never touching what a published root can reach.
// Beside the map sit sorted sets (immutable.SortedMap with empty values): all
// job ids (listing order), ids by job state, ids by label "k:v", finished
// jobs by finish time (for purging), and workspace ids by state; workspaces
// themselves live in a sorted map by id. A step event, the common case,
// changes only the jobs map; the sets change on submit, start, finish and
// purge. Counts by state are the sets' lengths.
//
// Listings (Jobs, Workspaces) read one root, so a page is consistent with
// one seq. With a state and a label filter, Jobs walks both sets together,
// each seeking to the other's key, and never scans jobs matching only one.
//
// Duplicates: the state remembers the ids of the last IDWindow events that
// carried one (DefaultIDWindow = 1<<20, about a million; set with
// NewStateWithIDWindow; snapshots carry it). The window is an append-only
// run of chunks of 1024 (id, seq) entries; every id remembered has a
// position, and a root records the positions it holds, [start, end). A
// new id is written at end; once the window holds more than IDWindow, start
// moves up one and a chunk is dropped once start passes it. Since eviction
// follows apply order, replay evicts exactly as the live state did. A slot
// is written once, by the draft that claimed it (an atomic counter per
// chunk: a second state grown from the same root copies the chunk instead),
// so a root's entries never change while it can see them. The window holds
// nothing the collector must follow per id: an id's bytes live in 8 KiB
// blocks of its chunk, and every map is keyed by a 64-bit hash of the id
// (maphash, seeded per process, never stored), each hit confirmed against
// the window; an id whose hash another held id has goes in a small map of
// its own. (As Go strings in string-keyed maps, a full window was a million
// heap objects and each collection spent about 260 ms of CPU marking
// them; now about 8 ms.) The engine's loop and a Recovery answer "is this
// id held?" from such an index, hash -> position (a table of its own,
// probed linearly, that leaves no tombstones), that only they touch;
// State.Applied, for anyone else, looks through the map each full chunk
// gets when its last slot is written, and scans the open chunk. An event
// whose id is
// remembered is answered with the first seq and duplicate true, is not
// applied and is not logged. Events without an id are never duplicates.
//
// Drafts: a persistent Set costs microseconds and several allocations at a
// million keys, so the loop does one per changed job per group, not per
// event. A draft is a mutable state over a root: the jobs and workspaces a
// group changes live in Go maps the draft owns. A job is copied once when
// first touched (the struct, and the attempts or workspaces slice it will
// change, with spare room so later appends do not copy again) and then
// changed in place while only the draft can reach it; reads and validation
// go through the draft to the root. Commit makes the next root with one
// persistent Set per changed job and workspace, and the sorted sets'
// changes computed from each job's (old, new) pair. Within a group, a
// request that is refused midway is rolled back from undo records (each
// entry, job value or attempt as it was before the request; window slots
// given back; index entries restored), so it leaves no trace. Apply(s, e,
// seq) and Replay are drafts of one event, committed.
//
// # Rules
//
// Validate refuses, with a *ConflictError naming the job, step or
// workspace, an event that does not fit the state:
//
//   - job.submitted: the job_id exists (a purged job's id may be reused);
//   - every other job event: the job is unknown;
//   - job.started: the job is not queued;
//   - step.started / step.finished: the job is not running (queued: the
//     step came before the job started; finished: no events on a finished
//     job), or the step is not declared;
//   - step.started: the step's last attempt is still running, or the
//     attempt is not the next one (1 for a step never started);
//   - step.finished: no such attempt started ("finished before it
//     started"), the attempt is not the step's last, or it already finished
//     (a second terminal status);
//   - job.finished: the job already finished, or it would succeed while
//     still queued (failed and canceled may end a queued job). Attempts
//     still running stay so in the history;
//   - workspace.allocated: the workspace is allocated; the job is unknown or
//     finished; the job already lists 4096 workspaces. A released
//     workspace's id may be allocated again: the record is replaced, and a
//     different previous job stops listing it;
//   - workspace.released: the workspace is unknown or already released;
//   - job.purged: the job is unknown or not finished. Purging drops the job,
//     its index entries and its workspaces.
//
// A step may be run again after it succeeded: only the order of attempts is
// checked.
//
// Apply(s, e, seq) is pure and deterministic. It returns s when seq is not
// above s.Seq(), so a log replayed over a snapshot that holds part of it is
// harmless. An event that Validate refuses only moves the seq (the engine
// never logs one; Replay reports it as an error instead).
//
// # Effects
//
// Effects are events the engine derives and logs like any other, flagged in
// the log encoding, right after the event that caused them and in the same
// request, so replay applies them and never computes them:
//
//   - a step.finished after which every declared step's last attempt
//     succeeded or was skipped adds job.finished succeeded;
//   - a job.finished (posted or derived) adds workspace.released for each
//     workspace of the job still allocated;
//   - with Options.RetainFinished > 0, a timer in the loop adds job.purged
//     for jobs finished longer ago than that (by the clock, against the
//     finish time), through the same path as requests.
//
// Effects take the time of the event that caused them; purges take the
// clock's time when they are made, and it is logged.
//
// # Engine
//
// One loop goroutine takes requests, draining what is queued up to MaxBatch
// events. Each request is prepared in the group's draft: duplicates
// answered, times filled, each event validated, applied with the seq it will
// get, its effects appended after it. A refused request is answered at once,
// rolled back from the draft and nothing of it is logged; other requests of
// the group go on. The group's records go to the log with one Write and the
// draft is committed into the group's root; the loop checks the log
// assigned the seqs it applied with, then hands the group to a second
// goroutine and goes on with the next one. That goroutine waits for
// WaitDurable(last), publishes the group's root with one atomic store,
// calls SetProcessed and answers the requests. So a root is published only
// once its records are durable, and the loop validates and writes the next
// group while the previous one syncs.
//
// If Write or WaitDurable fails, the engine turns read-only for good: the
// requests waiting are answered with an error wrapping ErrReadOnly and the
// cause, later ones fail at once, nothing more is published (every later
// root holds the failed records), and reads go on from the last root, which
// holds only durable records. WaitSeq waits on a channel closed at each
// publish. Close stops intake, answers what is in flight and stops both
// goroutines.
//
// # Snapshots
//
// EncodeSnapshot streams a root's jobs, workspaces and remembered ids from
// the maps in sorted order (snapshot.go draws the body); the checkpoint
// package frames, compresses and checksums it. The decoder parses from a
// refilled buffer, interns repeated short strings and shares equal step and
// label lists between jobs; it checks what it reads (order, limits, each
// workspace listed by its job, attempts in order, id seqs ascending),
// reporting a *CorruptionError with the body offset. Meta gives the seq and
// the counts for the snapshot's header.
//
// Recovery: DecodeRecovery reads a snapshot body into a draft in build
// mode, whose Go maps hold the whole state; Recovery.Replay applies log
// records to those maps in place, and Recovery.State builds the immutable
// maps and sets once, in sorted order, with the library's builders (which
// start from empty and are an order of magnitude cheaper than persistent
// inserts), on four goroutines for independent maps. So a snapshot plus its
// log is one build. A snapshot body not in memory is read ahead on a
// goroutine of its own, so decompression runs beside decoding; jobs,
// attempts and strings come from slabs. Recovery.ReplayAll decodes log
// records on a second goroutine while it applies the ones before.
// NewRecovery starts from a State: from an empty one it works the same
// way; from one with jobs it commits a draft every 4096 records.
// DecodeSnapshot is a Recovery with no records.
//
// # Measured
//
// On a shared 2-core machine (per CPU second of the whole process, the
// collector included; go test -bench, 20-attempt histories):
//
//   - BenchmarkApplyGroup, groups of 4096 step events in one draft: about
//     270-290k events/cpu-s at 10k jobs and 220-300k at 1M while no
//     collection runs; 1.2-1.7 KB and 4-5 allocations an event. Over 3M
//     events at 1M jobs the collector decides: 81k/cpu-s at GOGC=100 (one
//     cycle per million events, each marking the whole state), 135k at
//     200, 210k at 400. Before drafts: 120-180k/cpu-s with Apply, 2.4-3.3
//     KB and 10-11 allocations an event. Apply alone (a draft of one) stays
//     at that level: its floor is one persistent Set.
//   - BenchmarkRecover, 1M jobs and 1M records after them (742 MB of
//     body): load (decompress and decode) 251-264 MB/cpu-s, 300-332 MB/s
//     on a quiet machine; ReplayAll right after a load of the snapshot
//     file, the collection it began still running, 1.19-1.36M records/s
//     (0.75-0.82M while the benchmark also held the decompressed body, a
//     heap the daemon never has); Replay 413-600k records/cpu-s; the
//     final build 3.6-4.3 cpu-s, 1.8-3.7 s; the whole recovery 5.8-9.2 s.
//     Before slabs, read-ahead and ReplayAll: 72-83 MB/cpu-s, 259-362k
//     records/cpu-s, 15-29 s in all; before drafts, 34-41k records/cpu-s.
//   - BenchmarkReplayAllWindow, ReplayAll alone after 1M jobs with no
//     collection running: mostly 1.17-1.28M records/s (0.50M at the
//     busiest) over a snapshot holding no ids, 0.83-1.02M (0.63M) over one
//     holding a full id window (each record evicts an id); 0.46-0.85M and
//     0.40-0.72M before apply took what the conflict check found and the
//     id index became a table of its own.
//   - BenchmarkIDWindowGC, a full window of 1M ids: 8 ms of collection
//     (260 ms as strings in string-keyed maps), 15k heap objects (1.06M).
//   - BenchmarkMemoryPerJob: the state takes 1.5x the heap of the same jobs
//     in plain Go maps (1.38x before: published jobs keep the spare room
//     their group's draft gave them).
package pstate
