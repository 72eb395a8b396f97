// Package baseline is the design that pstate replaces, kept as a yardstick
// for the benchmark harness. It is a complete, correct engine, built the
// straightforward way:
//
//   - The state is plain Go maps of structs behind one mutex (the state
//     lock). Readers take it too.
//   - An event batch is validated and applied under the state lock, then
//     the lock is handed over to the log lock, under which the batch is
//     written as one record and fsynced. Each batch pays its own fsync; the
//     state shows a batch before it is durable.
//   - A checkpoint takes a deep clone of the state while holding both the
//     state lock and the log lock, so writers and readers wait for the
//     clone. The clone is then encoded with encoding/gob into a snapshot
//     file (fsync, rename, fsync of the directory) without locks.
//   - The log is truncated by copying the records written after the
//     checkpoint into a new file, fsyncing it and renaming it over the log,
//     all under the log lock.
//
// Lock order: the state lock before the log lock. A checkpoint holds the
// checkpoint lock around both.
//
// On disk, dir/log holds records and dir/snapshot.gob the latest snapshot.
// A record is one batch:
//
//	0        4        8                16
//	+--------+--------+----------------+----------------------+
//	| length | crc32c | first seq      | payload (length B)   |
//	+--------+--------+----------------+----------------------+
//
// length and crc32c are little-endian uint32; the checksum (Castagnoli)
// covers the first seq and the payload; the payload is the batch's events
// as a JSON array. A record cut short at the end of the file is a torn
// write and is cut off at open; any other damage is a *CorruptionError.
package baseline
