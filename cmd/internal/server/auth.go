package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// ReadToken reads a bearer token from a file: its content with surrounding
// white space removed. An empty token is an error, so that a truncated file
// never disables authentication.
func ReadToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return nil, fmt.Errorf("token file %s: the token holds white space", path)
	}
	return []byte(tok), nil
}

// requireToken wraps next so that every request except the probes
// (/healthz, /readyz) must carry "Authorization: Bearer TOKEN".
//
// Both sides are hashed first so that the constant-time comparison also
// hides the token's length.
func requireToken(token []byte, next http.Handler) http.Handler {
	want := sha256.Sum256(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := bearer(r)
		h := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(h[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pstate"`)
			msg := "missing bearer token"
			if ok {
				msg = "wrong bearer token"
			}
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer T" header.
func bearer(r *http.Request) (string, bool) {
	return bearerToken(r.Header.Get("Authorization"))
}

// bearerToken returns the token of an Authorization header's value.
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
