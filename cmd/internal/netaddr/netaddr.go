package netaddr

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// UnixPrefix marks a unix socket address.
const UnixPrefix = "unix:"

// Parse splits an address into the network and address that net.Listen and
// net.Dial take: "unix:PATH" gives ("unix", PATH) and "HOST:PORT" gives
// ("tcp", "HOST:PORT"). HOST may be empty (every interface), a name or an IP
// address (IPv6 in brackets); PORT is a number from 0 to 65535.
func Parse(s string) (network, address string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("netaddr: empty address")
	}
	if path, ok := strings.CutPrefix(s, UnixPrefix); ok {
		if path == "" {
			return "", "", fmt.Errorf("netaddr: %q: empty socket path", s)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("netaddr: %q: want unix:PATH or HOST:PORT: %w", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", "", fmt.Errorf("netaddr: %q: bad port %q", s, port)
	}
	if strings.ContainsAny(host, " /") {
		return "", "", fmt.Errorf("netaddr: %q: bad host %q", s, host)
	}
	return "tcp", s, nil
}

// Split flattens repeated, comma-separated address lists into one list,
// dropping empty entries and surrounding spaces, in order.
func Split(list []string) []string {
	var out []string
	for _, item := range list {
		for _, part := range strings.Split(item, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// IsLoopback reports whether an address never leaves the machine: a
// "unix:PATH" address, or a "HOST:PORT" whose host is "localhost" or a
// loopback IP (127.0.0.0/8, ::1). An empty host means every interface and is
// not loopback; so is any other name, since it may resolve anywhere.
func IsLoopback(address string) bool {
	address = strings.TrimSpace(address)
	if strings.HasPrefix(address, UnixPrefix) {
		return true
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = strings.Trim(address, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
