package ratelimit

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := New(1000, 4000) // 1,000 bytes a second, 4,000 at once
	b.now = func() time.Time { return now }
	if d := b.Take(4000); d != 0 {
		t.Fatalf("the burst waited %v", d)
	}
	if d := b.Take(500); d != 500*time.Millisecond {
		t.Fatalf("500 bytes over: wait %v, want 500ms", d)
	}
	now = now.Add(500 * time.Millisecond) // the deficit is earned back
	if d := b.Take(0); d != 0 {
		t.Fatalf("after the wait: %v", d)
	}
	now = now.Add(time.Hour) // a quiet connection refills to the burst, no more
	if d := b.Take(4000); d != 0 {
		t.Fatalf("refilled burst waited %v", d)
	}
	if d := b.Take(1000); d != time.Second {
		t.Fatalf("a second's worth over: wait %v", d)
	}
}

func TestUnlimited(t *testing.T) {
	b := New(0, 0)
	if b != nil {
		t.Fatal("rate 0 is a limit")
	}
	if d := b.Take(1 << 30); d != 0 {
		t.Fatalf("nil bucket waited %v", d)
	}
}

func TestPauseStopsWhenDone(t *testing.T) {
	done := make(chan struct{})
	close(done)
	if Pause(time.Hour, done) {
		t.Fatal("Pause slept through a closed connection")
	}
	if !Pause(time.Millisecond, nil) {
		t.Fatal("Pause of a millisecond failed")
	}
}

func TestSmallBurst(t *testing.T) {
	now := time.Unix(0, 0)
	b := New(1000, 100) // smooth: a tenth of a second's worth at once
	b.now = func() time.Time { return now }
	if d := b.Take(100); d != 0 {
		t.Fatalf("the burst waited %v", d)
	}
	if d := b.Take(1000); d != time.Second {
		t.Fatalf("a second's worth over a small burst: wait %v", d)
	}
}
