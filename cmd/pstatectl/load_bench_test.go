package main

import (
	"testing"
)

// BenchmarkLoadFill measures what the load generator spends per event to
// plan it and encode it into a request of 100.
func BenchmarkLoadFill(b *testing.B) {
	c := &loadClient{gen: newGenerator(defaultModel, 1, "B", 0), batch: 100, target: 25,
		quota: -1, stats: &loadStats{}}
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		c.fill()
		events += len(c.evs)
		c.settle(make([]result, len(c.evs)))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}
