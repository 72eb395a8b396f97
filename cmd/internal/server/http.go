package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pstate/pstate/checkpoint"
	"github.com/pstate/pstate/pstate"
)

// Limits of the HTTP API.
const (
	MaxBodyBytes  = 1 << 20 // POST /v1/events
	DefaultWait   = 5 * time.Second
	DefaultLimit  = 100
	MaxLimit      = 1000
	SeqHeader     = "Pstate-Seq"
	snapshotSlack = 30 * time.Second // write deadline renewed by each snapshot write
	// checkpointDeadline is the write deadline of POST /v1/checkpoint.
	checkpointDeadline = 30 * time.Minute
)

// Timeouts of the HTTP servers. WriteTimeout covers the longest read wait
// (MaxWait); a snapshot stream renews its own deadline as it makes
// progress.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	IdleTimeout       = 120 * time.Second
)

// Handler returns the HTTP API. With requireToken (and a configured token)
// every endpoint but /healthz and /readyz needs the bearer token.
func (s *Server) Handler(requireToken bool) http.Handler {
	if requireToken {
		return s.auth
	}
	return s.mux
}

// HTTPServer returns an http.Server for the API with the daemon's
// timeouts.
func (s *Server) HTTPServer(requireToken bool) *http.Server {
	return &http.Server{
		Handler:           s.Handler(requireToken),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      s.cfg.MaxWait + 30*time.Second,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		// Any other method on the path: a JSON 405.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				fmt.Sprintf("%s %s: use %s", r.Method, path, method))
		})
	}
	route("GET", "/healthz", s.healthz)
	route("GET", "/readyz", s.readyz)
	route("POST", "/v1/events", s.needReady(s.postEvents))
	route("GET", "/v1/jobs", s.needReady(s.getJobs))
	route("GET", "/v1/jobs/{id}", s.needReady(s.getJob))
	route("GET", "/v1/workspaces", s.needReady(s.getWorkspaces))
	route("GET", "/v1/workspaces/{id}", s.needReady(s.getWorkspace))
	route("GET", "/v1/status", s.needReady(s.getStatus))
	route("POST", "/v1/checkpoint", s.needReady(s.postCheckpoint))
	route("GET", "/v1/snapshot", s.needReady(s.getSnapshot))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+r.URL.Path)
	})
	return s.observe(cleanPaths(mux))
}

// cleanPaths answers 404 for a path with ".", ".." or "//" in it. The mux
// would redirect it to its clean form, but an API client gains nothing from
// a redirect, and net/http escapes an escaped path twice in its Location.
func cleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != "/" && path.Clean(p) != p {
			writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint: "+p)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// observe counts and, at debug level, logs every request.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(sw.code())).Inc()
		if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
			ce.Write(zap.String(keyMethod, r.Method), zap.String(keyPath, r.URL.Path),
				zap.Int(keyStatus, sw.code()), zap.Duration(keyDuration, time.Since(start)),
				zap.String(keyRemote, r.RemoteAddr))
		}
	})
}

// statusWriter remembers the status code for observe.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// needReady answers 503 until recovery is done and after stopping began.
func (s *Server) needReady(h func(http.ResponseWriter, *http.Request, *runtime)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rt := s.rt.Load()
		switch {
		case s.phase.Load() == phaseRecovering || rt == nil:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, CodeRecovering, "recovering")
		case s.phase.Load() == phaseStopped:
			writeError(w, http.StatusServiceUnavailable, CodeStopping, "stopped")
		default:
			h(w, r, rt)
		}
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyBody is the answer of /readyz.
type readyBody struct {
	Status string       `json:"status"` // ready | recovering | read_only | stopping
	Reason string       `json:"reason,omitempty"`
	Seq    *uint64      `json:"seq,omitempty"`
	Error  *errorDetail `json:"error,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	var b readyBody
	switch phase := s.phase.Load(); {
	case phase == phaseRecovering:
		b.Status, b.Reason = CodeRecovering, "recovering the state from the data dir"
	case phase >= phaseStopping:
		b.Status, b.Reason = CodeStopping, "shutting down"
	default:
		b.Status = "ready"
		if reason := s.readOnlyReason(); reason != "" {
			b.Status, b.Reason = CodeReadOnly, reason
		}
	}
	if rt := s.rt.Load(); rt != nil {
		seq := rt.engine.Root().Seq()
		b.Seq = &seq
		w.Header().Set(SeqHeader, strconv.FormatUint(seq, 10))
	}
	if b.Status == "ready" {
		writeJSON(w, http.StatusOK, b)
		return
	}
	b.Error = &errorDetail{Code: b.Status, Message: b.Reason}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, b)
}

// eventsAnswer is the answer of POST /v1/events, as the tests decode it;
// postEvents writes the same JSON by hand (appendEventsAnswer).
type eventsAnswer struct {
	Seq     uint64         `json:"seq"`
	Results []eventsResult `json:"results"`
}

type eventsResult struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// bodyPool holds the buffers request bodies are read into. The decoder
// copies every string it keeps, so a buffer is free again once the events
// are decoded.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledBody is the largest buffer put back into bodyPool; preGrowBody
// the most room readBody makes before the bytes arrive.
const (
	maxPooledBody = 256 << 10
	preGrowBody   = 64 << 10
)

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, rt *runtime) {
	if reason := s.readOnlyReason(); reason != "" {
		writeError(w, http.StatusServiceUnavailable, CodeReadOnly, "read-only: "+reason)
		return
	}
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			bodyPool.Put(bp)
		}
	}()
	body, err := readBody(w, r, (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
				fmt.Sprintf("body larger than %d bytes", MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, CodeBadRequest, "read body: "+err.Error())
		return
	}
	// The body's buffer is done with once the events are decoded: the
	// answer is written into it.
	status, answer := s.submitEvents(r.Context(), rt, body, (*bp)[:0])
	*bp = answer[:0]
	writeBody(w, status, answer)
}

// submitEvents decodes and submits the events of a POST /v1/events body
// and returns the answer's status and JSON, appended to out. out may share
// body's storage: body is read to the end before out is written.
func (s *Server) submitEvents(ctx context.Context, rt *runtime, body, out []byte) (int, []byte) {
	events, err := pstate.DecodeEvents(body)
	if err != nil {
		if n := batchLen(body); n > pstate.MaxBatchEvents {
			return http.StatusRequestEntityTooLarge, appendError(out, CodeTooLarge,
				fmt.Sprintf("%d events; a batch holds at most %d", n, pstate.MaxBatchEvents))
		}
		return s.engineError(out, err)
	}
	results, err := rt.engine.Submit(ctx, events)
	if err != nil {
		return s.engineError(out, err)
	}
	return http.StatusOK, appendEventsAnswer(out, results)
}

// readBody appends the request body to buf, refusing one larger than
// MaxBodyBytes with an *http.MaxBytesError. Room is made ahead for what
// Content-Length declares only up to preGrowBody: beyond that the buffer
// grows as bytes arrive, so a client that declares a megabyte and sends
// nothing holds no megabyte.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	if n := r.ContentLength; n > MaxBodyBytes {
		return buf, &http.MaxBytesError{Limit: MaxBodyBytes}
	} else if n > 0 {
		buf = slices.Grow(buf, int(min(n, preGrowBody))+1) // +1: the read that sees EOF
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// appendEventsAnswer appends the JSON of an eventsAnswer and a newline.
func appendEventsAnswer(b []byte, results []pstate.Result) []byte {
	var seq uint64
	for _, res := range results {
		seq = max(seq, res.Seq)
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"results":[`...)
	for i, res := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, res.Seq, 10)
		b = append(b, `,"duplicate":`...)
		b = strconv.AppendBool(b, res.Duplicate)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// batchLen counts the events of a {"events": [...]} body; 0 for anything
// else. It runs only on the error path, to tell "too many" (413) from
// malformed (400).
func batchLen(body []byte) int {
	var b struct {
		Events []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(body, &b) != nil {
		return 0
	}
	return len(b.Events)
}

// engineError maps the errors of decoding and Submit to an answer's
// status and JSON, appended to out.
func (s *Server) engineError(out []byte, err error) (int, []byte) {
	var ie *pstate.InputError
	var ce *pstate.ConflictError
	switch {
	case errors.As(err, &ie):
		return http.StatusBadRequest, appendError(out, CodeBadRequest, ie.Error())
	case errors.As(err, &ce):
		return http.StatusConflict, appendError(out, CodeConflict, ce.Error())
	case errors.Is(err, pstate.ErrReadOnly):
		return http.StatusServiceUnavailable, appendError(out, CodeReadOnly, err.Error())
	case errors.Is(err, pstate.ErrClosed):
		return http.StatusServiceUnavailable, appendError(out, CodeStopping, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away; the batch may still have been written.
		return http.StatusServiceUnavailable, appendError(out, CodeCanceled, err.Error())
	default:
		s.log.Error("submit failed", zap.Error(err))
		return http.StatusInternalServerError, appendError(out, CodeInternal, err.Error())
	}
}

// read loads the root a read answers from: the current one, or, with
// min_seq=N, the first one at or past N (waiting up to wait=, default 5s,
// then 504). It sets the Pstate-Seq header. On false it has answered.
func (s *Server) read(w http.ResponseWriter, r *http.Request, rt *runtime) (*pstate.State, bool) {
	q := r.URL.Query()
	root := rt.engine.Root()
	wait := DefaultWait
	if v := q.Get("wait"); v != "" {
		d, err := parseWait(v)
		if err != nil || d < 0 || d > s.cfg.MaxWait {
			writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(
				"wait=%q: want a duration from 0 to %v (like 2s or 500ms)", v, s.cfg.MaxWait))
			return nil, false
		}
		wait = d
	}
	if v := q.Get("min_seq"); v != "" {
		minSeq, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("min_seq=%q: want a sequence number", v))
			return nil, false
		}
		if root.Seq() < minSeq {
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			defer cancel()
			defer context.AfterFunc(s.stopCtx, cancel)()
			st, err := rt.engine.WaitSeq(ctx, minSeq)
			if err != nil {
				s.writeWaitError(w, err, minSeq, wait, rt)
				return nil, false
			}
			root = st
		}
	}
	w.Header().Set(SeqHeader, strconv.FormatUint(root.Seq(), 10))
	return root, true
}

// writeWaitError answers a min_seq wait that failed: 504 when the time ran
// out, 503 when the state can no longer reach min_seq (read-only, stopping).
func (s *Server) writeWaitError(w http.ResponseWriter, err error, minSeq uint64,
	wait time.Duration, rt *runtime) {
	at := rt.engine.Root().Seq()
	switch {
	case errors.Is(err, pstate.ErrReadOnly):
		writeError(w, http.StatusServiceUnavailable, CodeReadOnly, fmt.Sprintf(
			"state is at %d and cannot reach min_seq %d: %v", at, minSeq, err))
	case errors.Is(err, pstate.ErrClosed) || s.stopCtx.Err() != nil:
		writeError(w, http.StatusServiceUnavailable, CodeStopping, fmt.Sprintf(
			"state is at %d and cannot reach min_seq %d: %v", at, minSeq, err))
	default:
		writeError(w, http.StatusGatewayTimeout, CodeTimeout, fmt.Sprintf(
			"state did not reach min_seq %d within %v (at %d)", minSeq, wait, at))
	}
}

// parseWait takes a Go duration ("2s") or a number of seconds ("2").
func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

func (s *Server) postCheckpoint(w http.ResponseWriter, r *http.Request, rt *runtime) {
	if reason := s.readOnlyReason(); reason != "" {
		writeError(w, http.StatusServiceUnavailable, CodeReadOnly, "read-only: "+reason)
		return
	}
	// A big state takes longer to write than the server's WriteTimeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(checkpointDeadline))
	res, err := rt.ckpt.Checkpoint(r.Context())
	if err != nil {
		if reason := s.readOnlyReason(); reason != "" {
			writeError(w, http.StatusServiceUnavailable, CodeReadOnly, "read-only: "+reason)
			return
		}
		writeError(w, http.StatusInternalServerError, CodeInternal, "checkpoint: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"seq": res.Seq, "bytes": res.Bytes, "duration_ms": ms(res.Duration),
		"skipped": res.Skipped,
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// getSnapshot streams a snapshot of one root in the checkpoint format.
func (s *Server) getSnapshot(w http.ResponseWriter, r *http.Request, rt *runtime) {
	root, ok := s.read(w, r, rt)
	if !ok {
		return
	}
	c := capture(root, s.cfg.Clock())
	c.Meta.Counts = c.Counts()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="snap-%020d.pst"`, c.Meta.Seq))
	h.Set("Cache-Control", "no-store")
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	if _, err := checkpoint.Encode(dw, c.Meta, c.Encode); err != nil {
		// The status is sent; cut the connection so the client sees a
		// truncated stream (the format's checksum catches it too).
		s.log.Warn("snapshot stream failed", zap.Error(err), zap.Uint64(keySeq, c.Meta.Seq))
		panic(http.ErrAbortHandler)
	}
}

// deadlineWriter renews the connection's write deadline before each write:
// a client that keeps reading gets a snapshot of any size, one that stalls
// is cut after snapshotSlack.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(snapshotSlack))
	return d.w.Write(p)
}
