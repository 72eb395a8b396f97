// Package checkpoint writes and reads snapshots of the state and runs the
// background checkpointer that takes them and truncates the log behind
// them. It knows nothing of jobs: the state arrives as an encode callback
// (Capture) and goes back through a callback that reads the body.
//
// # Use
//
// At start the daemon calls RemoveTemp, then Load to find the snapshot to
// recover from (the log then replays what follows its seq), then Start.
// GET /v1/snapshot streams Encode of a capture; `pstatectl restore` reads a
// backup with Decode and writes it into an empty data dir with Write.
//
// # Snapshot format, version 1
//
// One snapshot, the same bytes in a file (snapshots/snap-<seq, 20 digits>
// .pst) and in a backup stream. Integers are little-endian.
//
//	0        8     10     12       16    24     32     36
//	+--------+-----+------+--------+-----+------+------+-- ... --+--------+
//	| magic  | ver | flags| M u32  | seq | time | n u32| counts  | hdr CRC|
//	+--------+-----+------+--------+-----+------+------+-- ... --+--------+
//	|<------ fixed 16 ----------->|<------------- M bytes ------>|  4     |
//
//	then the body, chunks of the zstd stream, as many as needed:
//	+----------+----------+------------------------+
//	| len u32  | CRC32C   | len bytes (1..1 MiB)   |   ...
//	+----------+----------+------------------------+
//
//	then the 32-byte trailer, then the end of the file:
//	0        4        8            16          24         28         32
//	+--------+--------+------------+-----------+----------+----------+
//	| 0 u32  | chunks | packed u64 | raw u64   | body CRC | trl CRC  |
//	+--------+--------+------------+-----------+----------+----------+
//
// magic is "\x89PSNAP\r\n"; ver is 1 (uint16); flags is 0. M (20..65536)
// is the length of the meta section: seq (uint64, the last event in the
// state), time (int64 Unix nanoseconds of the capture, 0 for none), n and n
// counts, each a name length (uint8, 1..255), the name and a uint64; the
// names are unique and sorted. Every later version keeps the first 16 bytes
// and the header CRC at 16+M.
//
// The body is one zstd stream (github.com/klauspost/compress/zstd, with its
// own xxhash64 content checksum) cut into chunks; writers emit 256 KiB
// chunks. A length of 0 where a chunk would start opens the trailer:
// chunks is the number of chunks, packed the sum of their lengths, raw the
// length of the decompressed body.
//
// # Checksums
//
// All are CRC32C (Castagnoli).
//
//   - hdr CRC covers bytes [0, 16+M): magic to the last count.
//   - each chunk's CRC covers its payload; a chunk is checked before any of
//     its bytes reach the zstd decoder, so damage is reported at the offset
//     of its chunk.
//   - body CRC covers every body byte, chunk headers included, from 20+M to
//     the trailer; it catches chunks dropped, repeated or reordered.
//   - trl CRC covers trailer bytes [0, 28).
//
// The zstd frame's checksum covers the decompressed body. A reader also
// checks that the counts in the trailer match and that nothing follows it.
//
// # Limits a reader enforces
//
// M at most 64 KiB, a chunk at most 1 MiB, each allocated only as its bytes
// arrive; a zstd window of at most 16 MiB (writers use 4 or 8 MiB), so a
// frame declaring a huge window is refused before memory is taken for it;
// one decoder goroutine (none: zstd decodes in the caller).
//
// # Sharing the machine
//
// A checkpoint must not slow the writers. The Checkpointer encodes on one
// goroutine (zstd in the caller, no goroutines of its own) and paces it
// (Config.Share, pace.go): short stretches of work, then a sleep, so that
// the event loop finds a core and a P free. The fsyncs inside the file
// keep its dirty pages few, so that the log's fdatasyncs do not wait for
// a large flush. zstd encoders are reused between snapshots.
//
// # Durability
//
// Write encodes into snap-<seq>.pst.tmp, fsyncing it every 1 MiB as it
// goes and once at the end, renames it into place and fsyncs the
// directory; only then may the log be truncated. A failed write or fsync
// removes the temporary file and leaves older snapshots as they were. Load
// takes the newest sound snapshot the log covers, and falls back to an
// older one past damage only when the log still covers it.
package checkpoint
