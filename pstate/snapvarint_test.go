package pstate

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// TestFastUvarint checks the snapshot decoder's uvarint against
// encoding/binary: the same value and length for every shortest form, and
// a refusal of longer forms, overflows and cut-short input.
func TestFastUvarint(t *testing.T) {
	vals := []uint64{0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 1<<56 - 1, 1 << 56, 1<<63 - 1,
		1 << 63, math.MaxUint64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		vals = append(vals, r.Uint64()>>r.IntN(64))
	}
	for _, v := range vals {
		enc := binary.AppendUvarint(nil, v)
		for pad := range 12 {
			b := append(append([]byte{0xff}, enc...), make([]byte, pad)...)
			for i := 1 + len(enc); i < len(b); i++ {
				b[i] = 0x80 | byte(i) // continuation bytes after the end
			}
			got, n := fastUvarint(b, 1)
			if got != v || n != len(enc) {
				t.Fatalf("%x (pad %d): got %d, %d; want %d, %d", enc, pad, got, n, v,
					len(enc))
			}
		}
		if len(enc) > 1 {
			if _, n := fastUvarint(enc[:len(enc)-1], 0); n != 0 {
				t.Fatalf("%x cut short: length %d", enc, n)
			}
		}
		if len(enc) < binary.MaxVarintLen64 {
			long := append(append([]byte(nil), enc...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
			long[len(enc)-1] |= 0x80 // one more byte, zero: not the shortest form
			if _, n := fastUvarint(long, 0); n != 0 {
				t.Fatalf("%x: longer form accepted", long[:len(enc)+1])
			}
		}
	}
	over := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0}
	if _, n := fastUvarint(over, 0); n != 0 {
		t.Fatal("overflow accepted")
	}
}
