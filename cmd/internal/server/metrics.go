package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Job and workspace states, in the order the metrics list them.
var (
	jobStates       = []string{"queued", "running", "succeeded", "failed", "canceled"}
	workspaceStates = []string{"allocated", "released"}
)

// gauges is what the scrape-time collectors read from the server.
type gauges interface {
	walBytes() float64
	stateSeq() float64
	durableSeq() float64
	readOnly() float64
	ready() float64
	counts() (jobs, workspaces map[string]uint64)
}

// metrics holds every metric of the daemon. The names are part of the
// contract; the ones marked (extra) are ours.
type metrics struct {
	eventsApplied      prometheus.Counter
	applyDuration      prometheus.Histogram
	fsyncDuration      prometheus.Histogram
	fsyncErrors        prometheus.Counter // (extra)
	checkpointDuration prometheus.Histogram
	checkpointCapture  prometheus.Histogram
	checkpointBytes    prometheus.Gauge   // (extra)
	checkpointErrors   prometheus.Counter // (extra)
	truncateLock       prometheus.Histogram
	lastCheckpointSeq  prometheus.Gauge
	recoveryDuration   prometheus.Gauge
	recoveryRecords    prometheus.Gauge       // (extra)
	walRepairs         prometheus.Counter     // (extra)
	requests           *prometheus.CounterVec // (extra) by route and code
}

func newMetrics(reg prometheus.Registerer, g gauges) *metrics {
	lat := prometheus.ExponentialBuckets(10e-6, 2.5, 14) // 10µs .. ~1.5s
	slow := prometheus.ExponentialBuckets(1e-3, 2, 16)   // 1ms .. ~33s
	m := &metrics{
		eventsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pstate_events_applied_total",
			Help: "Events applied to the state (client events and the daemon's effects).",
		}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pstate_apply_duration_seconds",
			Help:    "Time the event loop spent validating and applying one batch.",
			Buckets: lat,
		}),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pstate_wal_fsync_duration_seconds",
			Help:    "Duration of each fdatasync of the log.",
			Buckets: lat,
		}),
		fsyncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pstate_wal_fsync_errors_total",
			Help: "Failed fdatasyncs of the log; one turns the daemon read-only.",
		}),
		checkpointDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pstate_checkpoint_duration_seconds",
			Help:    "Duration of each checkpoint: capture, encode, write, sync, truncate.",
			Buckets: slow,
		}),
		checkpointCapture: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pstate_checkpoint_capture_seconds",
			Help:    "Time to capture the state for a checkpoint (one atomic load).",
			Buckets: lat,
		}),
		checkpointBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pstate_checkpoint_bytes",
			Help: "Size of the newest snapshot file.",
		}),
		checkpointErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pstate_checkpoint_errors_total",
			Help: "Checkpoints that failed.",
		}),
		truncateLock: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pstate_wal_truncate_lock_seconds",
			Help:    "Time the log's lock was held to end a truncation.",
			Buckets: lat,
		}),
		lastCheckpointSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pstate_last_checkpoint_seq",
			Help: "Seq of the newest snapshot.",
		}),
		recoveryDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pstate_recovery_duration_seconds",
			Help: "Duration of the recovery at start: snapshot load and log replay.",
		}),
		recoveryRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pstate_recovery_records",
			Help: "Log records replayed at start.",
		}),
		walRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pstate_wal_repairs_total",
			Help: "Torn log tails cut at open.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pstate_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
	}
	reg.MustRegister(
		m.eventsApplied, m.applyDuration, m.fsyncDuration, m.fsyncErrors,
		m.checkpointDuration, m.checkpointCapture, m.checkpointBytes,
		m.checkpointErrors, m.truncateLock, m.lastCheckpointSeq,
		m.recoveryDuration, m.recoveryRecords, m.walRepairs, m.requests,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pstate_wal_bytes", Help: "Size of the log file.",
		}, g.walBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pstate_state_seq", Help: "Seq of the published state root.",
		}, g.stateSeq),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pstate_wal_durable_seq", Help: "Highest seq durable in the log.",
		}, g.durableSeq),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pstate_read_only", Help: "1 while writes are refused after a log failure.",
		}, g.readOnly),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pstate_ready", Help: "1 once recovered and writable.",
		}, g.ready),
		&countsCollector{g: g},
	)
	return m
}

// RegisterRuntime adds the Go and process collectors to a registry.
func RegisterRuntime(reg prometheus.Registerer) {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}

// countsCollector exposes pstate_jobs{state} and pstate_workspaces{state}
// from the published root at scrape time, every state always present.
type countsCollector struct{ g gauges }

var (
	jobsDesc = prometheus.NewDesc("pstate_jobs", "Jobs in the state, by job state.",
		[]string{"state"}, nil)
	workspacesDesc = prometheus.NewDesc("pstate_workspaces",
		"Workspaces in the state, by workspace state.", []string{"state"}, nil)
)

func (c *countsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- workspacesDesc
}

func (c *countsCollector) Collect(ch chan<- prometheus.Metric) {
	jobs, workspaces := c.g.counts()
	for _, s := range jobStates {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(jobs[s]), s)
	}
	for _, s := range workspaceStates {
		ch <- prometheus.MustNewConstMetric(workspacesDesc, prometheus.GaugeValue,
			float64(workspaces[s]), s)
	}
}
