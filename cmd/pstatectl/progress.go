package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress draws a one-line progress bar of submit, redrawn in place at
// most every redrawEvery.
type progress struct {
	w     io.Writer
	total int64 // input bytes, 0 when unknown
	start time.Time
	last  time.Time
}

const (
	redrawEvery = 100 * time.Millisecond
	barWidth    = 30
	clearEOL    = "\x1b[K" // erases what a longer earlier line left
)

func newProgress(w io.Writer, total int64) *progress {
	now := time.Now()
	return &progress{w: w, total: total, start: now}
}

// update redraws the bar for events sent out of read input bytes.
func (p *progress) update(events, read int64) {
	now := time.Now()
	if now.Sub(p.last) < redrawEvery {
		return
	}
	p.last = now
	fmt.Fprint(p.w, "\r"+p.line(events, read, now.Sub(p.start))+clearEOL)
}

// done draws the final state and ends the line.
func (p *progress) done(events, read int64) {
	fmt.Fprint(p.w, "\r"+p.line(events, read, time.Since(p.start))+clearEOL+"\n")
}

// line renders the bar: the part done, the events sent out of the total
// estimated from the input's size, and the rate.
func (p *progress) line(events, read int64, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(events) / elapsed.Seconds()
	}
	if p.total <= 0 || read <= 0 {
		return fmt.Sprintf("%d events  %s events/s ", events, fmtRate(rate))
	}
	frac := min(float64(read)/float64(p.total), 1)
	full := int(frac * barWidth)
	bar := strings.Repeat("=", full) + strings.Repeat(" ", barWidth-full)
	est := int64(float64(events) / frac)
	return fmt.Sprintf("[%s] %3.0f%%  %d/~%d events  %s events/s ", bar, frac*100,
		events, est, fmtRate(rate))
}

// fmtRate prints a rate with a k or M suffix.
func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}
