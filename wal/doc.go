// Package wal is pstate's write-ahead log: one file of checksummed records
// with consecutive sequence numbers (seqs), group commit, replay, repair of
// a torn last record and truncation that never stops the writers.
//
// # Use
//
//	l, err := wal.Open(dir, wal.Options{Sync: wal.SyncAlways})
//	err = l.Replay(from, apply)         // recovery
//	first, last, err := l.Write(batch)  // assigns seqs, does not wait
//	err = l.WaitDurable(last)           // group commit
//	l.SetProcessed(last)                // lock-free
//	err = l.TruncateBefore(snapSeq + 1) // after a snapshot at snapSeq
//
// Write and WaitDurable are split so that a caller can apply one batch
// while the previous one syncs; Append does both.
//
// # On disk
//
// The log is dir/pstate.wal. Format version 1 (FormatVersion); integers are
// little-endian. The file starts with a 32-byte header:
//
//	0        8        12       16                24       28       32
//	+--------+--------+--------+-----------------+--------+--------+
//	| magic  |version |max rec |    base seq     |  zero  | crc32c |
//	+--------+--------+--------+-----------------+--------+--------+
//
// magic is "PSTATWAL"; max rec is the largest payload a record of this
// file may hold; base seq is the seq of the first record, or of the next
// record written when the file holds none, so an empty log still knows
// its next seq. The crc32c (Castagnoli) covers bytes 0 to 28.
//
// Records follow back to back, each a 16-byte header and the payload:
//
//	0        4        8                 16
//	+--------+--------+-----------------+------------------------+
//	| crc32c | length |       seq       | payload (length bytes) |
//	+--------+--------+-----------------+------------------------+
//
// The crc32c (Castagnoli) covers bytes 4 to 16 of the record header (length
// and seq) and then the payload. An all-zero header does not pass: the
// checksum of zero bytes is not zero and seq 0 is never written. The seqs
// of a file are base seq, base seq+1, ... with no gap.
//
// # Size limit
//
// Write refuses a payload over Options.MaxRecordSize (ErrRecordTooLarge).
// The reader checks every length field with the same function against the
// header's max rec, which is never below the limit the writer used, and
// checks it against the bytes left in the file before it allocates: a
// damaged length never makes it allocate more than the file holds. Open
// rewrites a log whose header carries a smaller limit than the options.
//
// # Torn tail or damage
//
// Zeros from the end of the records to the end of the file are the log's
// end, not damage: Write lays up to preallocBytes of them ahead of its
// records (so that an fdatasync after an append need not also write the
// file's size), Close cuts them, and Open after a crash writes over them.
//
// A crash while writing can leave a torn last record: a short header, a
// short payload, a garbage tail. A bad record is taken for the torn tail
// only if no sound record (a header whose length fits and whose checksum
// holds, with seq > 0) starts at any later byte offset.
// Open cuts the torn tail, fsyncs and reports it through Options.OnRepair;
// Scan only reports it. Anything else (a bad checksum or length followed
// by a sound record, a seq out of order) is a *CorruptionError with file,
// offset, kind and cause, and Open refuses the log.
//
// Limit: a batch's write that reached the disk with a hole in the middle
// (pages persisted out of order) and a sound record after the hole is
// reported as damage, not cut; an operator decides.
//
// # Durability
//
// Under SyncAlways a record is durable once fdatasync'd. One flusher
// goroutine runs sync rounds: each round takes the group of waiters that
// gathered, syncs every record written so far and wakes the whole group
// with one result. A failed fdatasync fails that group and leaves the log
// failed: every later Write and WaitDurable returns an error wrapping
// ErrFailed and the cause, and nothing is fsync'd or reported durable
// again. A failed or short write fails the log the same way; the partial
// record is cut at once if possible and in any case at the next Open.
// Records written before a failed write may still become durable.
//
// # Truncation
//
// TruncateBefore(seq) builds pstate.wal.tmp holding a header (base seq =
// seq) and the records kept, while writers carry on:
//
//  1. Without the lock: copy the records kept up to the end recorded at
//     the start, then catch up in passes until little was appended; fsync.
//  2. Under the lock, without I/O: note the log's end E and make every
//     later write go to the temp file too (dual writes), at the offset E
//     will have there.
//  3. Without the lock: copy the records between the last pass and E into
//     the gap left for them; fsync. Meanwhile each sync round fsyncs both
//     files, so every answered record is durable in both.
//  4. Rename the temp file over the log.
//  5. Under the lock, without I/O: swap the handle; later writes go to
//     the new file only.
//  6. fsync the directory. A sync round answers records written after
//     the swap only once a directory fsync followed the rename, because
//     before that a crash may bring back the old file.
//
// A crash at any step leaves either the old file or the new one, and each
// holds every answered record with seq >= seq; stray temp files are
// removed at Open. A failed dual write fails the log, since the new file
// may already carry the log's name. The lock holds (steps 2 and 5 and a
// few reads of the end) do not grow with the log; OnTruncateLock reports
// each one.
//
// # Locks
//
// Each mutex of Log, with what it guards, in the order they are taken
// (never the reverse):
//
//	truncMu  serialises TruncateBefore, Replay and Close
//	flushMu  held for a sync round, and to close a handle a round may use
//	mu       w: the file handle, its size, the encode buffer, the dual
//	         file of a truncation; taken by Write
//
// Two leaves are taken alone, never with another lock taken after them:
// dirMu guards dirSynced, the last rename whose directory fsync succeeded
// (not held during that fsync), and committer.mu the waiting group and
// the round in flight.
// Write takes only mu, so the
// flusher's fsync and a truncation's copy never block it; a truncation
// holds mu only briefly, without I/O. firstSeq, nextSeq, written, size and
// failure are stored under mu; durable by the sync that achieved it;
// processed by the caller. All are atomics read without any lock:
// Processed, SetProcessed, NextSeq, DurableSeq and Size take no lock.
package wal
