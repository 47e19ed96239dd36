package xmppsrv

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/roster"
)

// TestReadRateSlowsAFloodAndLosesNothing: a client sending far over
// Config.ReadRate is read more slowly (it takes at least as long as its
// rate allows) but every message arrives, in order, and another client
// sending meanwhile is not held up behind it.
func TestReadRateSlowsAFloodAndLosesNothing(t *testing.T) {
	const rate, burst = 64 << 10, 16 << 10
	h := newHarness(t, func(c *Config, _ *roster.Config) { c.ReadRate, c.ReadBurst = rate, burst })
	alice := h.online("alice", "flood")
	carol := h.online("carol", "calm")
	bob := h.online("bob", "desk")

	const n = 600
	body := strings.Repeat("x", 200)
	var flood strings.Builder
	for i := range n {
		fmt.Fprintf(&flood, "<message to='bob@%s' type='chat' id='f%d'><body>%s</body></message>", domain, i, body)
	}
	start := time.Now()
	go func() {
		alice.conn.SetWriteDeadline(time.Time{})
		io.WriteString(alice.conn, flood.String())
	}()
	carol.send(`<message to='bob@%s' type='chat' id='calm'><body>not stuck behind alice</body></message>`, domain)

	next, carolAt := 0, -1
	deadline := time.Now().Add(60 * time.Second)
	for next < n {
		el, err := bob.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("bob got %d of %d flood messages: %v", next, n, err)
		}
		if bob.autoAnswer(el) || el.Local != "message" {
			continue
		}
		switch id := el.Get("id"); {
		case id == "calm":
			carolAt = next
		case id != fmt.Sprintf("f%d", next):
			t.Fatalf("flood message %s arrived when f%d was due", id, next)
		default:
			next++
		}
	}
	elapsed := time.Since(start)
	// A lower bound only: a loaded machine makes this slower, never faster.
	min := time.Duration(float64(flood.Len()-burst) / rate * float64(time.Second) * 3 / 4)
	if elapsed < min {
		t.Fatalf("%d bytes at %d bytes/s with a burst of %d took %v: not throttled (at least %v)", flood.Len(), rate, burst, elapsed, min)
	}
	if carolAt < 0 || carolAt >= n-1 {
		t.Fatalf("carol's message came after %d of alice's %d: held up behind the flood", carolAt, n)
	}
	if h.srv.m.ReadWaits.Load() == 0 {
		t.Fatal("no read waited: the metric is not counted")
	}
	if h.srv.m.SlowClients.Load() != 0 || h.srv.m.QueueDrops.Load() != 0 {
		t.Fatalf("slow clients %d, drops %d", h.srv.m.SlowClients.Load(), h.srv.m.QueueDrops.Load())
	}
	t.Logf("%d bytes in %v (%d reads held back); carol's message arrived after %d of alice's", flood.Len(), elapsed, h.srv.m.ReadWaits.Load(), carolAt)
}
