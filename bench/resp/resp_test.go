package resp

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	in := "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	want := []Value{
		{Kind: '+', Str: "OK"},
		{Kind: '-', Str: "ERR bad"},
		{Kind: ':', Int: 42},
		{Kind: '$', Str: "hello"},
		{Kind: '$', Null: true},
		{Kind: '*', Array: []Value{
			{Kind: '$', Str: "a"},
			{Kind: '*', Array: []Value{{Kind: ':', Int: 1}}},
		}},
	}
	for i, w := range want {
		v, err := Read(r)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("reply %d: got %+v, want %+v", i, v, w)
		}
	}
	if _, err := Read(r); err != io.EOF {
		t.Fatalf("after the last reply: %v", err)
	}
}

func TestReadRejects(t *testing.T) {
	for _, in := range []string{"?x\r\n", ":x\r\n", "$3\r\nabcd\r\n", "$-2\r\n", "*-5\r\n", "+OK\n",
		strings.Repeat("*1\r\n", MaxDepth+1) + ":1\r\n"} {
		if _, err := Read(bufio.NewReader(strings.NewReader(in))); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: got %v, want a protocol error", in, err)
		}
	}
}

func TestAppendCommand(t *testing.T) {
	got := string(AppendCommand(nil, "SET", "k", ""))
	if want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte("*2\r\n$1\r\na\r\n:5\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(strings.NewReader(string(b)))
		for range 8 {
			if _, err := Read(r); err != nil {
				return
			}
		}
	})
}
