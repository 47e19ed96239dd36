// Package ratelimit throttles what one connection may send: a token
// bucket of bytes, refilled at a sustained rate up to a burst. A reader
// over its limit is made to wait before it reads again, so the sender
// meets TCP back-pressure and nothing it sent is lost (as Prosody's
// mod_limits and ejabberd's shapers do).
package ratelimit

import (
	"time"
)

// Bucket is the budget of one connection. It is used by the connection's
// reading goroutine only, so it needs no lock.
type Bucket struct {
	rate   float64 // bytes a second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

// New returns a bucket that allows rate bytes a second on average and
// up to burst bytes at once, starting full. A rate of zero or less means
// no limit: New returns nil, and a nil *Bucket allows everything.
func New(rate, burst int) *Bucket {
	if rate <= 0 {
		return nil
	}
	burst = max(burst, 1)
	return &Bucket{rate: float64(rate), burst: float64(burst), tokens: float64(burst), now: time.Now}
}

// Take spends n bytes and returns how long the reader must wait before
// reading more: zero while the bucket holds tokens, otherwise the time it
// takes to earn back the deficit.
func (b *Bucket) Take(n int) time.Duration {
	if b == nil {
		return 0
	}
	now := b.now()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// Pause sleeps for d, or until done is closed (the connection is
// closing); it reports false then.
func Pause(d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}
