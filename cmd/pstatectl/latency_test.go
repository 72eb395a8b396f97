package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var h histogram
	var all []time.Duration
	for range 20000 {
		d := time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := all[int(q*float64(len(all)-1))]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/16)+1 {
			t.Errorf("q%.3f: %v, exact %v", q, got, exact)
		}
	}
	if h.max != all[len(all)-1] {
		t.Errorf("max %v, want %v", h.max, all[len(all)-1])
	}
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, d := range []time.Duration{0, 1, 63, 64, 65, 127, 128, 1000, time.Second, 1<<62 + 5, 1<<63 - 1} {
		b := bucketOf(d)
		if b <= prev && d > 0 && b != prev {
			t.Fatalf("bucket of %d is %d after %d", d, b, prev)
		}
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucket of %d is %d", d, b)
		}
		if bucketHigh(b) < d {
			t.Fatalf("bucket %d of %d ends at %d", b, d, bucketHigh(b))
		}
		prev = b
	}
	var h, o histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	o.record(time.Millisecond)
	h.merge(&o)
	if h.n != 1 || h.quantile(0.99) != time.Millisecond {
		t.Fatalf("merged: n %d p99 %v", h.n, h.quantile(0.99))
	}
}
