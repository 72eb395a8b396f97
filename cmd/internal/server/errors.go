package server

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error codes in the "code" field of an error body.
const (
	CodeBadRequest       = "bad_request"        // 400
	CodeUnauthorized     = "unauthorized"       // 401
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409
	CodeTooLarge         = "too_large"          // 413
	CodeInternal         = "internal"           // 500
	CodeReadOnly         = "read_only"          // 503: the log failed
	CodeRecovering       = "recovering"         // 503: not ready yet
	CodeStopping         = "stopping"           // 503: shutting down
	CodeCanceled         = "canceled"           // 503: the request ended before its answer
	CodeTimeout          = "timeout"            // 504: min_seq not reached in time
)

// errorBody is the JSON of every error answer:
// {"error": {"code": "...", "message": "..."}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with an error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeBody(w, status, appendError(nil, code, message))
}

// appendError appends an error body and its newline to b.
func appendError(b []byte, code, message string) []byte {
	j, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: message}})
	return append(append(b, j...), '\n')
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: errorDetail{Code: CodeInternal,
			Message: "encode answer: " + err.Error()}})
	}
	writeBody(w, status, append(b, '\n'))
}

// writeBody answers with b, a JSON document and its newline. The length
// is sent as Content-Length, so the answer is never chunked.
func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Header values shared by every answer; net/http copies the header map
// before it writes it and never changes these slices.
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
)
