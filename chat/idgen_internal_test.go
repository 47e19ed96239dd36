package chat

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestAppendHex holds the ID formatting to the fmt verbs it replaced, at
// the widths' edges too (a value wider than its field is not cut).
func TestAppendHex(t *testing.T) {
	for _, x := range []uint64{0, 1, 0xf, 0x10, 0xffff, 0x10000, 1<<48 - 1, 1 << 48, math.MaxUint32, math.MaxUint64} {
		for _, w := range []int{4, 8, 12} {
			if got, want := string(appendHex(nil, x, w)), fmt.Sprintf("%0*x", w, x); got != want {
				t.Errorf("appendHex(%#x, %d) = %q, want %q", x, w, got, want)
			}
		}
	}
	var g idGen
	now := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	a, b := g.next(now), g.next(now)
	us := now.Sub(epoch2020).Microseconds()
	if want := fmt.Sprintf("%012x%04x", us, 1); len(b) != 24 || b[:16] != want || a[:16] != fmt.Sprintf("%012x%04x", us, 0) {
		t.Errorf("ids %q, %q; want them to start with %012x0000 and %s", a, b, us, want)
	}
}
