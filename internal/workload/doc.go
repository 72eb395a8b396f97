// Package workload is the deterministic model of a job system's traffic that
// the benchmark harness and the load generator both drive into a store.
//
// A job is submitted with 5..N named steps and labels, started by a worker,
// given a workspace (sometimes a second, short-lived scratch one), and then
// runs its steps in order. An attempt of a step may fail and be retried up
// to a limit; a step may be skipped. A job that exhausts the retries of a
// step finishes failed, some jobs are canceled between steps, and the rest
// succeed. Some finished jobs are purged.
//
// The generator yields, per job, a sequence of events that a store following
// the contract accepts in order: every event fits the state left by the
// ones before it. Two rules of the contract shape the sequences:
//
//   - A job whose every declared step's last attempt succeeded or was
//     skipped is finished by the store itself, so the generator never sends
//     job.finished with status succeeded.
//   - Workspaces the client releases are released before the event that
//     ends the job, so no event ever releases a workspace the store already
//     released; with Config.ReleaseRate below 1 some are left to the store.
//
// Everything is a pure function of Config.Seed and the job's number: job n's
// events are the same on every run, on every machine, and whichever
// goroutine asks first. Every event carries a unique id.
package workload
