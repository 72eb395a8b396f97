package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 64ns, then
// 32 buckets per power of two, so a percentile is off by at most 1/32 (it
// is reported as the upper bound of its bucket). Memory stays fixed however
// long the load runs. The zero value is ready to use.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	histSub     = 32 // buckets per power of two
	histLinear  = 2 * histSub
	histBuckets = histLinear + 58*histSub
)

// bucketOf returns the bucket of d (negative counts as 0).
func bucketOf(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - 6 // v>>shift is in [32, 64)
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// bucketHigh returns the largest duration in bucket i.
func bucketHigh(i int) time.Duration {
	if i < histLinear {
		return time.Duration(i)
	}
	shift := (i-histLinear)/histSub + 1
	sub := uint64((i-histLinear)%histSub + histSub)
	hi := (sub+1)<<shift - 1
	if hi > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(hi)
}

// record counts one duration.
func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the duration below which a fraction q of the samples
// lie (0 when there are none); never more than the maximum seen.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketHigh(i), h.max)
		}
	}
	return h.max
}
