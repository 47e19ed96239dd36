package media

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func quietLogger() *slog.Logger {
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// leakCheck records the goroutine count and, at cleanup (after the
// servers and clients registered later have closed), waits for it to come
// back down, failing with a dump of what is left.
func leakCheck(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, interesting(buf))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// interesting keeps the goroutine dumps that mention pion or this package.
func interesting(dump []byte) string {
	var out []string
	for _, g := range bytes.Split(dump, []byte("\n\n")) {
		if bytes.Contains(g, []byte("pion")) || bytes.Contains(g, []byte("parley/media")) || bytes.Contains(g, []byte("websocket")) {
			out = append(out, string(g))
		}
	}
	return strings.Join(out, "\n\n")
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkIntact verifies that every packet rt received is byte-for-byte one
// the sender sent, that sequence numbers have no holes, and returns how many
// arrived.
func checkIntact(t *testing.T, rt *recvTrack, s *synthSender) int {
	t.Helper()
	pkts := rt.snapshot()
	seen := map[uint16]bool{}
	for _, p := range pkts {
		key := synthKey(p.payload)
		want, ok := s.sentPayload(key)
		if !ok {
			t.Fatalf("%s: received a payload never sent (key %q)", rt.key, key)
		}
		if !bytes.Equal(want, p.payload) {
			t.Fatalf("%s: payload %q differs from what was sent", rt.key, key)
		}
		seen[p.seq] = true
	}
	if len(pkts) > 0 {
		first, last := pkts[0].seq, pkts[0].seq
		for _, p := range pkts {
			if seqAfter(p.seq, last) {
				last = p.seq
			}
		}
		holes := 0
		for s := first; s != last+1; s++ {
			if !seen[s] {
				holes++
			}
		}
		if holes > 0 {
			t.Errorf("%s: %d holes in sequence numbers %d..%d", rt.key, holes, first, last)
		}
	}
	return len(pkts)
}

func TestForwardIntactToSubscribers(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	const n = 4
	var subs []*testClient
	for i := 0; i < n; i++ {
		subs = append(subs, dialClient(t, ts, fmt.Sprintf("room1/sub%d", i), clientOpts{}))
	}
	pub := dialClient(t, ts, "room1/pub", clientOpts{})
	senders := pub.publish(synthSpec{source: SourceMic, level: 30}, synthSpec{source: SourceCamera})
	audio, video := senders[0], senders[1]

	for _, c := range subs {
		c.track("pub/mic", 5*time.Second)
		c.track("pub/camera", 5*time.Second)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, c := range subs {
		na := checkIntact(t, c.track("pub/mic", time.Second), audio)
		nv := checkIntact(t, c.track("pub/camera", time.Second), video)
		if na < 40 || nv < 30 {
			t.Errorf("%s got %d audio and %d video packets in 1.5s", c.id, na, nv)
		}
		first := c.track("pub/camera", time.Second).snapshot()[0]
		if !isVP8KeyStart(first.payload) {
			t.Errorf("%s: video did not start with a keyframe", c.id)
		}
	}
}
