package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pstate/pstate/cmd/internal/netaddr"
)

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Client talks HTTP to one pstated over a unix socket or TCP.
type Client struct {
	hc      *http.Client
	base    string // "http://host:port", or "http://pstated" for a socket
	token   string // bearer token, empty for none
	addr    string // as given, for messages
	network string // for net.Dial: "unix" or "tcp"
	address string
}

// NewClient returns a client of the daemon at addr (unix:PATH or HOST:PORT).
// tokenFile, when not empty, holds the bearer token. conns is the number of
// idle connections kept for reuse (at least 2).
func NewClient(addr, tokenFile string, conns int) (*Client, error) {
	network, address, err := netaddr.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("parse --addr: %w", err)
	}
	c := &Client{addr: addr, network: network, address: address}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
		if c.token == "" {
			return nil, fmt.Errorf("read token: %s is empty", tokenFile)
		}
	}
	if conns < 2 {
		conns = 2
	}

	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, address)
		},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		// NB: a snapshot is compressed already; asking for gzip would
		// only cost CPU on both ends.
		DisableCompression: true,
	}
	c.hc = &http.Client{Transport: tr}
	c.base = "http://" + address
	if network == "unix" {
		c.base = "http://pstated"
	}
	return c, nil
}

// Close drops the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is an answer other than 2xx: the HTTP status and the server's
// error code and message.
type APIError struct {
	Status  int
	Code    string
	Message string
	// Index is the index of the event an answer to a batch names, or -1.
	Index int
}

func (a *APIError) Error() string {
	if a.Code == "" {
		return fmt.Sprintf("server answered %d %s: %s", a.Status,
			http.StatusText(a.Status), a.Message)
	}
	return fmt.Sprintf("server answered %d %s: %s", a.Status, a.Code, a.Message)
}

// apiError decodes the error answer of resp and closes its body.
func apiError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ae := &APIError{Status: resp.StatusCode, Index: -1}

	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Index   *int   `json:"index"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && (doc.Error.Code != "" || doc.Error.Message != "") {
		ae.Code, ae.Message = doc.Error.Code, doc.Error.Message
		if doc.Error.Index != nil {
			ae.Index = *doc.Error.Index
		}
		return ae
	}
	ae.Message = strings.TrimSpace(string(body))
	if ae.Message == "" {
		ae.Message = "(empty body)"
	}
	return ae
}

// Do sends a request and returns the answer when its status is 2xx; any
// other status becomes an *APIError. The caller closes the body.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values,
	body []byte) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s at %s: %w", method, path, c.addr, unwrapURL(err))
	}
	if resp.StatusCode/100 != 2 {
		return nil, apiError(resp)
	}
	return resp, nil
}

// unwrapURL drops the *url.Error wrapping, whose text repeats the made-up
// URL of a socket.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Get reads path and returns the raw JSON body and the Pstate-Seq header
// (0 when absent).
func (c *Client) Get(ctx context.Context, path string, query url.Values) ([]byte, uint64, error) {
	resp, err := c.Do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("read answer of GET %s: %w", path, err)
	}
	seq, _ := strconv.ParseUint(resp.Header.Get("Pstate-Seq"), 10, 64)
	return body, seq, nil
}

// Post sends body to path and returns the raw JSON answer.
func (c *Client) Post(ctx context.Context, path string, body []byte) ([]byte, error) {
	if body == nil {
		body = []byte{}
	}
	resp, err := c.Do(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of POST %s: %w", path, err)
	}
	return b, nil
}

// decodeJSON unmarshals an answer, naming what it was.
func decodeJSON(b []byte, what string, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s answer: %w", what, err)
	}
	return nil
}
