package netaddr

import (
	"net"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, network, address string
		bad                  bool
	}{
		{in: "unix:/run/pstated.sock", network: "unix", address: "/run/pstated.sock"},
		{in: "unix:rel/x.sock", network: "unix", address: "rel/x.sock"},
		{in: "127.0.0.1:7070", network: "tcp", address: "127.0.0.1:7070"},
		{in: "[::1]:7070", network: "tcp", address: "[::1]:7070"},
		{in: ":7070", network: "tcp", address: ":7070"},
		{in: "localhost:0", network: "tcp", address: "localhost:0"},
		{in: " 127.0.0.1:1 ", network: "tcp", address: "127.0.0.1:1"},
		{in: "", bad: true},
		{in: "unix:", bad: true},
		{in: "127.0.0.1", bad: true},
		{in: "127.0.0.1:http", bad: true},
		{in: "127.0.0.1:70000", bad: true},
		{in: "/tmp/x.sock", bad: true},
		{in: "::1:80", bad: true},
	} {
		network, address, err := Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %q, %q; want an error", tc.in, network, address)
			}
			continue
		}
		if err != nil || network != tc.network || address != tc.address {
			t.Errorf("Parse(%q) = %q, %q, %v; want %q, %q", tc.in, network, address, err,
				tc.network, tc.address)
		}
	}
}

func TestSplit(t *testing.T) {
	got := Split([]string{"a:1,b:2", " ", "unix:/x, c:3,,"})
	want := []string{"a:1", "b:2", "unix:/x", "c:3"}
	if !slices.Equal(got, want) {
		t.Fatalf("Split = %q; want %q", got, want)
	}
	if got := Split(nil); len(got) != 0 {
		t.Fatalf("Split(nil) = %q", got)
	}
}

func TestIsLoopback(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:80":   true,
		"127.1.2.3:80":   true,
		"[::1]:80":       true,
		"localhost:80":   true,
		"LOCALHOST:80":   true,
		"unix:/x.sock":   true,
		"::1":            true,
		":80":            false,
		"0.0.0.0:80":     false,
		"[::]:80":        false,
		"10.0.0.1:80":    false,
		"example.com:80": false,
		"":               false,
	} {
		if got := IsLoopback(in); got != want {
			t.Errorf("IsLoopback(%q) = %v; want %v", in, got, want)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts round-trips: a unix
// address keeps its path, a TCP address splits into host and port.
func FuzzParse(f *testing.F) {
	f.Add("unix:/x.sock")
	f.Add("127.0.0.1:80")
	f.Fuzz(func(t *testing.T, s string) {
		network, address, err := Parse(s)
		if err != nil {
			return
		}
		switch network {
		case "unix":
			if address == "" || UnixPrefix+address != strings.TrimSpace(s) {
				t.Fatalf("Parse(%q) = unix %q", s, address)
			}
		case "tcp":
			if _, _, err := net.SplitHostPort(address); err != nil {
				t.Fatalf("Parse(%q) = tcp %q: %v", s, address, err)
			}
		default:
			t.Fatalf("Parse(%q): network %q", s, network)
		}
		_ = IsLoopback(s)
		for _, part := range Split([]string{s}) {
			if strings.Contains(part, ",") {
				t.Fatalf("Split left a comma in %q", part)
			}
		}
	})
}
