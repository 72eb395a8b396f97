package server

// Log keys, defined once.
const (
	keySeq           = "seq"
	keyRecords       = "records"
	keyRecordsPerSec = "records_per_sec"
	keyDuration      = "duration"
	keyElapsed       = "elapsed"
	keyCapture       = "capture"
	keySnapshot      = "snapshot"
	keySnapshotSeq   = "snapshot_seq"
	keyBytes         = "bytes"
	keySize          = "size"
	keyFile          = "file"
	keyOffset        = "offset"
	keyReason        = "reason"
	keyMethod        = "method"
	keyPath          = "path"
	keyStatus        = "status"
	keyRemote        = "remote"
	keyEvents        = "events"
)
