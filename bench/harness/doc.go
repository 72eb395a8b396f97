// Package harness drives one workload (internal/workload) into pstate and
// into what users would otherwise use, side by side on one machine in one
// run, and reports the numbers.
//
// The systems: pstate in-process (an Engine over a wal.Log, with the
// checkpointer), pstate through its HTTP API (the real pstated on a unix
// socket), the baseline engine of bench/baseline, SQLite (modernc.org/
// sqlite, WAL mode, synchronous=FULL) and Redis (a redis-server started
// here with appendonly yes and appendfsync always; BGSAVE is its
// checkpoint).
//
// Every system is first bulk-loaded with the end state of the same jobs
// (unmeasured), then measured:
//
//  1. write latency p50/p99/p99.9/max with no checkpoint, and while
//     checkpoints run back to back;
//  2. how long a log truncation holds the log lock, by log size (pstate's
//     log and the baseline's);
//  3. durable events/s with 1, 16 and 256 writers;
//  4. time from a cold start to the first answered query;
//  5. read latency under the full write load;
//  6. memory per job and bytes on disk.
//
// The disk's raw fdatasync rate and synced bandwidth, measured in the same
// run and directory, are the physical limits the write numbers are read
// against. Writers submit one event per batch, each batch one transaction,
// as workers report progress; a write counts once the system says it is
// durable.
package harness
