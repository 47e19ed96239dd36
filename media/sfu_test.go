package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
	"github.com/coder/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
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

// vp8Unnumbered is a copy of a VP8 payload without its picture ID and
// TL0PICIDX, which the SFU renumbers across layer switches (vp8munge.go);
// other payloads are returned as they are.
func vp8Unnumbered(s *synthSender, payload []byte) []byte {
	if s.spec.h264 || s.spec.vp9 || s.spec.source == SourceMic {
		return payload
	}
	f, ok := parseVP8Fields(payload)
	if !ok {
		return payload
	}
	c := append([]byte(nil), payload...)
	if f.picOff >= 0 {
		f.setPictureID(c, 0)
	}
	if f.tl0Off >= 0 {
		c[f.tl0Off] = 0
	}
	return c
}

// checkIntact verifies that every packet rt received is byte-for-byte one
// the sender sent, that sequence numbers have no holes, and returns how many
// arrived.
func checkIntact(t *testing.T, rt *recvTrack, s *synthSender) int {
	t.Helper()
	pkts := rt.all()
	seen := map[uint16]bool{}
	n := 0
	for _, p := range pkts {
		if p.padding {
			seen[p.seq] = true
			continue
		}
		n++
		key := synthKey(p.payload)
		want, ok := s.sentPayload(key)
		if !ok {
			t.Fatalf("%s: received a payload never sent (key %q)", rt.key, key)
		}
		if !bytes.Equal(vp8Unnumbered(s, want), vp8Unnumbered(s, p.payload)) {
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
	return n
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

// dropper is an interceptor for a subscriber that loses chosen incoming
// video packets the first time they arrive, after SRTP and before NACK
// generation, as if the network had lost them.
type dropper struct {
	mu      sync.Mutex
	every   uint16     // drop every n-th sequence number
	ratio   float64    // or this share of packets, at random
	rnd     *rand.Rand // for ratio
	dropped map[uint16]bool
	stopped bool // drop nothing more
}

// stop ends the losses; what was dropped can still come back.
func (d *dropper) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
}

func (d *dropper) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &dropInterceptor{d: d}, nil
}

func (d *dropper) seqs() []uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uint16
	for s := range d.dropped {
		out = append(out, s)
	}
	return out
}

type dropInterceptor struct {
	interceptor.NoOp
	d *dropper
}

func (i *dropInterceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	if !strings.HasPrefix(info.MimeType, "video/") {
		return reader
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, attr, err := reader.Read(b, a)
			if err != nil || n < 4 {
				return n, attr, err
			}
			seq := binary.BigEndian.Uint16(b[2:4])
			i.d.mu.Lock()
			drop := !i.d.stopped && !i.d.dropped[seq] && (i.d.every > 0 && seq%i.d.every == 0 || i.d.ratio > 0 && i.d.rnd.Float64() < i.d.ratio)
			if drop {
				i.d.dropped[seq] = true
			}
			i.d.mu.Unlock()
			if !drop {
				return n, attr, nil
			}
		}
	})
}

func TestNACKAnsweredFromCache(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	d := &dropper{every: 20, dropped: map[uint16]bool{}}
	sub := dialClient(t, ts, "room/sub", clientOpts{interceptors: []interceptor.Factory{d}})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	video := pub.publish(synthSpec{source: SourceCamera})[0]
	rt := sub.track("pub/camera", 5*time.Second)
	time.Sleep(2500 * time.Millisecond)
	// Stop the losses, so the last ones have the same time to be NACKed
	// and resent as the first, however loaded the machine.
	d.stop()
	dropped := d.seqs()
	if len(dropped) < 3 {
		t.Fatalf("only %d packets dropped; the test needs traffic", len(dropped))
	}
	// Every dropped packet must have come back, intact, with its number.
	waitFor(t, 5*time.Second, "retransmissions", func() bool {
		got := map[uint16]bool{}
		for _, p := range rt.snapshot() {
			got[p.seq] = true
		}
		for _, s := range dropped {
			if !got[s] {
				return false
			}
		}
		return true
	})
	checkIntact(t, rt, video)

	// The SFU answered them itself: the publisher was never asked.
	p := ts.sfu.room("room").get("sub")
	var retx uint64
	p.subMu.Lock()
	for _, dt := range p.downs {
		retx += dt.retransmits.Load()
	}
	p.subMu.Unlock()
	if retx < uint64(len(dropped)) {
		t.Errorf("SFU retransmitted %d packets for %d losses", retx, len(dropped))
	}
	if n := video.nacks.Load(); n != 0 {
		t.Errorf("publisher got %d NACKs; the SFU should answer from its cache", n)
	}
}

func TestLateJoinerGetsKeyframe(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	early := dialClient(t, ts, "room/early", clientOpts{})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	video := pub.publish(synthSpec{source: SourceCamera})[0] // keyframes only on request
	early.track("pub/camera", 5*time.Second)
	time.Sleep(1500 * time.Millisecond)

	plisBefore := video.plis[0].Load()
	keysBefore := video.keySent[0].Load()
	start := time.Now()
	var late []*testClient
	for i := 0; i < 3; i++ {
		late = append(late, dialClient(t, ts, fmt.Sprintf("room/late%d", i), clientOpts{}))
	}
	for _, c := range late {
		rt := c.track("pub/camera", 2*time.Second)
		waitFor(t, 2*time.Second, "video at a late joiner", func() bool { return len(rt.snapshot()) > 0 })
		first := rt.snapshot()[0]
		if d := first.at.Sub(start); d > time.Second {
			t.Errorf("%s: first video after %v", c.id, d)
		}
		if !isVP8KeyStart(first.payload) {
			t.Errorf("%s: first video packet is not a keyframe start", c.id)
		}
	}
	plis := video.plis[0].Load() - plisBefore
	if plis == 0 || video.keySent[0].Load() == keysBefore {
		t.Fatalf("no PLI reached the publisher (%d) or no keyframe was sent", plis)
	}
	// Three joiners within a few milliseconds cost the publisher about
	// one keyframe, not three.
	if plis > 3 {
		t.Errorf("publisher got %d PLIs for 3 joiners; keyframe requests are not rate-limited", plis)
	}
	t.Logf("late joiners: %d PLIs reached the publisher", plis)
}

// layersSince returns the simulcast layer of each video packet received
// after from.
func layersSince(rt *recvTrack, from int) []int {
	var out []int
	for _, p := range rt.snapshot()[from:] {
		out = append(out, synthLayer(p.payload))
	}
	return out
}

// steadyLayer is the layer of the last k packets if they agree, else -1.
func steadyLayer(pkts []recvPkt, k int) int {
	if len(pkts) < k {
		return -1
	}
	l := synthLayer(pkts[len(pkts)-1].payload)
	for _, p := range pkts[len(pkts)-k:] {
		if synthLayer(p.payload) != l {
			return -1
		}
	}
	return l
}

func waitLayer(t *testing.T, rt *recvTrack, want int, within time.Duration) int {
	t.Helper()
	var last int
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		pkts := rt.snapshot()
		if len(pkts) > 0 {
			last = synthLayer(pkts[len(pkts)-1].payload)
			// Settled on it: not just a late retransmission.
			if k := steadyLayer(pkts, 10); k == want {
				i := len(pkts) - 1
				for i > 0 && synthLayer(pkts[i-1].payload) == want {
					i--
				}
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still on layer %d after %v, want %d", rt.key, last, within, want)
	return 0
}

func TestSimulcastFollowsBandwidthAndDisplaySize(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	p := ts.sfu.room("room").get("sub")
	p.bwOverride.Store(10_000_000)

	pub := dialClient(t, ts, "room/pub", clientOpts{})
	video := pub.publish(synthSpec{source: SourceCamera, layers: []string{"q", "h", "f"}})[0]
	rt := sub.track("pub/camera", 5*time.Second)

	// Plenty of bandwidth: the full layer.
	waitLayer(t, rt, 2, 4*time.Second)
	// The real estimator is wired and running next to the override.
	if e := p.estimator.Load(); e == nil || (*e).GetTargetBitrate() <= 0 {
		t.Fatal("no congestion-control estimate for the subscriber")
	}

	// Bandwidth drops below the half layer: the quarter layer.
	p.bwOverride.Store(250_000)
	switchAt := waitLayer(t, rt, 0, 3*time.Second)
	pkts := rt.snapshot()
	before, after := pkts[switchAt-1], pkts[switchAt]
	if before.seq+1 != after.seq {
		t.Errorf("sequence jumps %d -> %d at the layer switch", before.seq, after.seq)
	}
	if !seqAfter32(after.ts, before.ts) {
		t.Errorf("timestamp goes back %d -> %d at the layer switch", before.ts, after.ts)
	}
	if !isVP8KeyStart(after.payload) {
		t.Error("the new layer does not start on a keyframe")
	}
	if video.plis[0].Load() == 0 {
		t.Error("no keyframe request reached the quarter layer")
	}

	// Bandwidth is back, but the subscriber shows the video at 640x360:
	// the half layer is enough.
	p.bwOverride.Store(10_000_000)
	sub.send(map[string]any{"type": "layer", "track": "pub/camera", "width": 640, "height": 360})
	waitLayer(t, rt, 1, 3*time.Second)

	// The subscriber pauses it: nothing more arrives.
	sub.send(map[string]any{"type": "layer", "track": "pub/camera", "paused": true})
	time.Sleep(300 * time.Millisecond)
	n := len(rt.snapshot())
	time.Sleep(500 * time.Millisecond)
	if m := len(rt.snapshot()); m != n {
		t.Errorf("%d packets arrived for a paused track", m-n)
	}
	checkIntact(t, rt, video)
}

func seqAfter32(a, b uint32) bool { return a != b && a-b < 1<<31 }

func TestModeratorMuteStopsAudio(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	mod := dialClient(t, ts, "room/mod/moderator", clientOpts{})
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	talker := dialClient(t, ts, "room/talker", clientOpts{})
	audio := talker.publish(synthSpec{source: SourceMic, level: 20}, synthSpec{source: SourceCamera})[0]
	rt := sub.track("talker/mic", 5*time.Second)
	cam := sub.track("talker/camera", 5*time.Second)
	waitFor(t, 2*time.Second, "audio", func() bool { return len(rt.snapshot()) > 10 })

	// Stopping video: the camera stops, the audio goes on.
	mod.send(map[string]any{"type": "moderate", "action": "stopVideo", "participant": "talker"})
	sub.waitEvent(EventMute, 2*time.Second, func(e Event) bool { return e.Source == SourceCamera && e.Blocked })
	time.Sleep(200 * time.Millisecond)
	nc, na := len(cam.snapshot()), len(rt.snapshot())
	time.Sleep(500 * time.Millisecond)
	if len(cam.snapshot()) != nc || len(rt.snapshot()) < na+15 {
		t.Errorf("after stopVideo: %d more video and %d more audio packets", len(cam.snapshot())-nc, len(rt.snapshot())-na)
	}
	mod.send(map[string]any{"type": "moderate", "action": "allowVideo", "participant": "talker"})
	waitFor(t, 2*time.Second, "video allowed again", func() bool { return len(cam.snapshot()) > nc+5 })

	// A participant may not moderate.
	sub.send(map[string]any{"type": "moderate", "action": "mute", "participant": "talker"})
	waitFor(t, 2*time.Second, "forbidden error", func() bool {
		for _, e := range sub.errorsSeen() {
			if e.Code == codeForbidden {
				return true
			}
		}
		return false
	})

	mod.send(map[string]any{"type": "moderate", "action": "mute", "participant": "talker"})
	ev := sub.waitEvent(EventMute, 2*time.Second, func(e Event) bool {
		return e.Participant == "talker" && e.Blocked && e.Source == SourceMic
	})
	if !ev.Muted || ev.By != "mod" || ev.Source != SourceMic {
		t.Errorf("mute event %+v", ev)
	}
	talker.waitEvent(EventMute, 2*time.Second, func(e Event) bool {
		return e.Participant == "talker" && e.Blocked && e.Source == SourceMic
	})
	time.Sleep(200 * time.Millisecond)
	n := len(rt.snapshot())
	// The talker trying to unmute themselves changes nothing.
	talker.send(map[string]any{"type": "mute", "source": "mic", "muted": false})
	time.Sleep(700 * time.Millisecond)
	if m := len(rt.snapshot()); m != n {
		t.Fatalf("%d audio packets forwarded after the moderator muted", m-n)
	}

	// The moderator lifts it; audio comes back as one continuous stream.
	mod.send(map[string]any{"type": "moderate", "action": "unmute", "participant": "talker"})
	waitFor(t, 2*time.Second, "audio after unmute", func() bool { return len(rt.snapshot()) > n+10 })
	pkts := rt.snapshot()
	if pkts[n].seq != pkts[n-1].seq+1 {
		t.Errorf("sequence jumps %d -> %d over the mute", pkts[n-1].seq, pkts[n].seq)
	}
	if gap := pkts[n].ts - pkts[n-1].ts; gap < 48000*7/10 {
		t.Errorf("timestamp advanced %d over a >0.7s mute", gap)
	}
	checkIntact(t, rt, audio)

	// Removing: the participant is told, and leaves the room.
	mod.send(map[string]any{"type": "moderate", "action": "remove", "participant": "talker"})
	ev = sub.waitEvent(EventLeft, 3*time.Second, func(e Event) bool { return e.Participant == "talker" })
	if ev.Reason != "removed" {
		t.Errorf("left event %+v", ev)
	}
	waitFor(t, time.Second, "removed message", func() bool {
		talker.mu.Lock()
		defer talker.mu.Unlock()
		return talker.removed != nil && talker.removed.By == "mod"
	})
}

// memSink keeps recordings in memory.
type memSink struct {
	mu    sync.Mutex
	files map[string]*memFile
}

type memFile struct {
	bytes.Buffer
	closed bool
	info   RecordingInfo
}

func (f *memFile) Close() error { f.closed = true; return nil }

func (s *memSink) Create(_ context.Context, info RecordingInfo) (io.WriteCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &memFile{info: info}
	s.files[info.Participant+"/"+string(info.Source)] = f
	return f, nil
}

func TestRecordingWritesWebM(t *testing.T) {
	leakCheck(t)
	sink := &memSink{files: map[string]*memFile{}}
	ts := newTestServer(t, func(c *Config) { c.Recording = sink })
	mod := dialClient(t, ts, "room/mod/moderator/rec", clientOpts{})
	other := dialClient(t, ts, "room/other/rec", clientOpts{})
	mod.publish(synthSpec{source: SourceMic, level: 30}, synthSpec{source: SourceCamera, layers: []string{"q", "h", "f"}})
	other.track("mod/camera", 5*time.Second)

	// Only moderators record.
	other.send(map[string]any{"type": "record", "on": true})
	waitFor(t, 2*time.Second, "forbidden", func() bool { return len(other.errorsSeen()) > 0 })

	mod.send(map[string]any{"type": "record", "on": true})
	other.waitEvent(EventRecording, 2*time.Second, func(e Event) bool { return e.Recording && e.By == "mod" })
	if !ts.sfu.Recording("room") {
		t.Fatal("SFU does not report the recording")
	}
	time.Sleep(2 * time.Second)
	mod.send(map[string]any{"type": "record", "on": false})
	other.waitEvent(EventRecording, 2*time.Second, func(e Event) bool { return !e.Recording })

	sink.mu.Lock()
	f := sink.files["mod/camera"]
	sink.mu.Unlock()
	if f == nil || !f.closed {
		t.Fatalf("no closed recording for mod: %+v", sink.files)
	}
	var doc struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment webm.Segment    `ebml:"Segment"`
	}
	if err := ebml.Unmarshal(bytes.NewReader(f.Bytes()), &doc); err != nil {
		t.Fatalf("recording does not parse: %v", err)
	}
	if doc.Header.DocType != "webm" {
		t.Errorf("doc type %q", doc.Header.DocType)
	}
	codecs := map[uint64]string{}
	for _, e := range doc.Segment.Tracks.TrackEntry {
		codecs[e.TrackNumber] = e.CodecID
	}
	if codecs[1] != "A_OPUS" || codecs[2] != "V_VP8" {
		t.Fatalf("tracks %v, want A_OPUS and V_VP8", codecs)
	}
	blocks := map[uint64]int{}
	firstVideoKey, sawVideo := false, false
	var lastTime = map[uint64]int64{}
	for _, c := range doc.Segment.Cluster {
		for _, b := range c.SimpleBlock {
			blocks[b.TrackNumber]++
			at := int64(c.Timecode) + int64(b.Timecode)
			if at < lastTime[b.TrackNumber] {
				t.Errorf("track %d goes back in time: %d after %d", b.TrackNumber, at, lastTime[b.TrackNumber])
			}
			if _, ok := lastTime[b.TrackNumber]; !ok {
				t.Logf("track %d first block at %d ms", b.TrackNumber, at)
			}
			lastTime[b.TrackNumber] = at
			if b.TrackNumber == 2 && !sawVideo {
				sawVideo, firstVideoKey = true, b.Keyframe
				if !isVP8Keyframe(b.Data[0]) {
					t.Error("first video frame has no keyframe bit")
				}
			}
		}
	}
	// 2 s of 20 ms audio and 30 fps video; allow for start-up.
	if blocks[1] < 60 || blocks[2] < 30 {
		t.Errorf("blocks per track %v", blocks)
	}
	if !firstVideoKey {
		t.Error("first video block not flagged as a keyframe")
	}
	t.Logf("recording: %d bytes, %v blocks per track, %v ms", f.Len(), blocks, lastTime)
}

func isVP8Keyframe(frame []byte) bool { return len(frame) > 0 && frame[0]&1 == 0 }

func TestRecordingNeedsPermission(t *testing.T) {
	leakCheck(t)
	sink := &memSink{files: map[string]*memFile{}}
	ts := newTestServer(t, func(c *Config) { c.Recording = sink })
	mod := dialClient(t, ts, "room/mod/moderator", clientOpts{}) // limits without recording
	mod.send(map[string]any{"type": "record", "on": true})
	waitFor(t, 2*time.Second, "refusal", func() bool {
		for _, e := range mod.errorsSeen() {
			if e.Code == codeRecording {
				return true
			}
		}
		return false
	})
	if err := ts.sfu.SetRecording("room", true); !errors.Is(err, ErrRecordingUnavailable) {
		t.Errorf("SetRecording: %v", err)
	}
}

// freezeConn is a TCP connection that can go silent without closing, like
// a laptop whose lid was shut: reads stop, writes vanish.
type freezeConn struct {
	net.Conn
	frozen atomic.Bool
}

func (c *freezeConn) Write(b []byte) (int, error) {
	if c.frozen.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func freezingDialer(out **freezeConn) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc := &freezeConn{Conn: c}
		*out = fc
		return fc, nil
	}
}

func TestVanishedParticipantIsRemoved(t *testing.T) {
	leakCheck(t)
	var events sync.Map
	ts := newTestServer(t, func(c *Config) {
		c.OnEvent = func(e Event) {
			if e.Type == EventLeft {
				events.Store(e.Participant, e)
			}
		}
	})
	watcher := dialClient(t, ts, "room/watcher", clientOpts{})
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var fc *freezeConn
	gone := dialClient(t, ts, "room/gone", clientOpts{udp: udp, dial: freezingDialer(&fc)})
	gone.publish(synthSpec{source: SourceMic}, synthSpec{source: SourceCamera})
	watcher.track("gone/camera", 5*time.Second)
	watcher.send(map[string]any{"type": "mute", "source": "mic", "muted": true}) // keep the watcher busy

	// Its server-side state, held weakly so the test does not keep it.
	sp := ts.sfu.room("room").get("gone")
	wp := weak.Make(sp)
	sp.mu.Lock()
	wu := weak.Make(sp.ups[SourceCamera])
	sp.mu.Unlock()
	sp = nil

	// The lid shuts: media stops without a goodbye, the WebSocket falls
	// silent without closing.
	start := time.Now()
	for _, s := range gone.senders {
		s.stop()
	}
	fc.frozen.Store(true)
	udp.Close()

	ev := watcher.waitEvent(EventLeft, 15*time.Second, func(e Event) bool { return e.Participant == "gone" })
	took := time.Since(start)
	t.Logf("vanished participant removed after %v (reason %q)", took.Round(100*time.Millisecond), ev.Reason)
	if ev.Reason != "timeout" {
		t.Errorf("reason %q, want timeout", ev.Reason)
	}
	if took > 12*time.Second {
		t.Errorf("removal took %v", took)
	}
	if _, ok := events.Load("gone"); !ok {
		t.Error("the host's OnEvent did not hear of it")
	}
	if ts.sfu.room("room").get("gone") != nil {
		t.Error("still in the room")
	}
	// Its memory is free: nothing in the SFU (or pion) still refers to
	// the participant or its camera track.
	waitFor(t, 5*time.Second, "the participant's memory to be collected", func() bool {
		runtime.GC()
		return wp.Value() == nil && wu.Value() == nil
	})
	fc.Conn.Close()
}

func TestSilentWebSocketIsRemoved(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, func(c *Config) {
		c.PingInterval = 300 * time.Millisecond
		c.PingTimeout = 300 * time.Millisecond
	})
	watcher := dialClient(t, ts, "room/watcher", clientOpts{})
	var fc *freezeConn
	dialClient(t, ts, "room/quiet", clientOpts{dial: freezingDialer(&fc)})
	watcher.waitEvent(EventJoined, 2*time.Second, func(e Event) bool { return e.Participant == "quiet" })
	start := time.Now()
	fc.frozen.Store(true)
	watcher.waitEvent(EventLeft, 3*time.Second, func(e Event) bool { return e.Participant == "quiet" && e.Reason == "timeout" })
	t.Logf("silent WebSocket dropped after %v", time.Since(start).Round(10*time.Millisecond))
	fc.Conn.Close()
}

func TestRoomLimits(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	dialClient(t, ts, "room/a/max=2/pubs=1", clientOpts{})
	b := dialClient(t, ts, "room/b/max=2/pubs=1", clientOpts{})
	if _, err := tryDial(t, ts, "room/c/max=2/pubs=1", clientOpts{}); err == nil || !strings.Contains(err.Error(), codeRoomFull) {
		t.Fatalf("third join: %v, want %s", err, codeRoomFull)
	}
	// A rejoin of someone already in does not count against the limit.
	a2 := dialClient(t, ts, "room/a/max=2/pubs=1", clientOpts{})
	a2.publish(synthSpec{source: SourceMic})
	b.track("a/mic", 5*time.Second)
	b.publish(synthSpec{source: SourceMic})
	waitFor(t, 3*time.Second, "publisher-limit error", func() bool {
		for _, e := range b.errorsSeen() {
			if e.Code == codePublisherFull {
				return true
			}
		}
		return false
	})
	ps, _ := ts.sfu.Participants("room")
	if len(ps) != 2 {
		t.Errorf("participants %+v", ps)
	}
}

func TestScreenSharePreferredWhenBandwidthIsShort(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	p := ts.sfu.room("room").get("sub")
	p.bwOverride.Store(10_000_000)
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	layers := []string{"q", "h", "f"}
	pub.publish(
		synthSpec{source: SourceCamera, layers: layers, bitrates: []int{100_000, 600_000, 1_500_000}},
		synthSpec{source: SourceScreen, layers: layers, bitrates: []int{100_000, 300_000, 1_500_000}},
	)
	screen := sub.track("pub/screen", 5*time.Second)
	camera := sub.track("pub/camera", 5*time.Second)
	waitLayer(t, screen, 2, 4*time.Second)
	waitLayer(t, camera, 2, 4*time.Second)

	// Room for the screen's full layer, the camera's quarter layer and
	// half of what the camera's half layer would add, at the rates the
	// SFU measures: the screen keeps its full layer, the camera drops to
	// the quarter.
	rate := func(key string, l int8) int64 {
		for up := range ts.sfu.room("room").tracks {
			if up.key == key {
				return up.layer(l).bitrate.Load()
			}
		}
		return 0
	}
	var sf, cq, ch int64
	waitFor(t, 4*time.Second, "measured rates", func() bool {
		ts.sfu.room("room").mu.Lock()
		defer ts.sfu.room("room").mu.Unlock()
		sf, cq, ch = rate("pub/screen", 2), rate("pub/camera", 0), rate("pub/camera", 1)
		return sf > 0 && cq > 0 && ch > 0
	})
	time.Sleep(1100 * time.Millisecond) // one more sample, smoothed
	ts.sfu.room("room").mu.Lock()
	sf, cq, ch = rate("pub/screen", 2), rate("pub/camera", 0), rate("pub/camera", 1)
	ts.sfu.room("room").mu.Unlock()
	p.bwOverride.Store(sf + cq + (ch-cq)/2)
	waitLayer(t, camera, 0, 4*time.Second)
	if l := steadyLayer(screen.snapshot(), 10); l != 2 {
		t.Errorf("screen share on layer %d, want 2", l)
	}
	sub.mu.Lock()
	var sources []Source
	for _, ti := range sub.mids {
		sources = append(sources, ti.Source)
	}
	sub.mu.Unlock()
	if len(sources) != 2 {
		t.Errorf("offered sources %v", sources)
	}
}

func TestActiveSpeaker(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	watcher := dialClient(t, ts, "room/watcher", clientOpts{})
	alice := dialClient(t, ts, "room/alice", clientOpts{})
	bob := dialClient(t, ts, "room/bob", clientOpts{})
	a := alice.publish(synthSpec{source: SourceMic, level: 25})[0]
	b := bob.publish(synthSpec{source: SourceMic, level: 110})[0]
	watcher.waitEvent(EventActiveSpeaker, 3*time.Second, func(e Event) bool { return e.Participant == "alice" })
	a.level.Store(120)
	b.level.Store(20)
	watcher.waitEvent(EventActiveSpeaker, 4*time.Second, func(e Event) bool { return e.Participant == "bob" })
}

func TestTwoSFUsInOneProcess(t *testing.T) {
	leakCheck(t)
	one := newTestServer(t, nil)
	two := newTestServer(t, nil)
	if one.sfu.UDPAddr().String() == two.sfu.UDPAddr().String() {
		t.Fatal("the two SFUs share a socket")
	}
	for _, ts := range []*testServer{one, two} {
		sub := dialClient(t, ts, "room/sub", clientOpts{})
		pub := dialClient(t, ts, "room/pub", clientOpts{})
		v := pub.publish(synthSpec{source: SourceCamera})[0]
		rt := sub.track("pub/camera", 5*time.Second)
		waitFor(t, 2*time.Second, "video", func() bool { return len(rt.snapshot()) > 20 })
		checkIntact(t, rt, v)
	}
	ps1, _ := one.sfu.Participants("room")
	ps2, _ := two.sfu.Participants("room")
	if len(ps1) != 2 || len(ps2) != 2 {
		t.Errorf("rooms leak into each other: %d and %d participants", len(ps1), len(ps2))
	}
	one.close()
	// The second keeps working after the first closed.
	sub := dialClient(t, two, "room/late", clientOpts{})
	rt := sub.track("pub/camera", 5*time.Second)
	waitFor(t, 2*time.Second, "video after the other SFU closed", func() bool { return len(rt.snapshot()) > 5 })
}

func TestJoinRefusals(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	if _, err := tryDial(t, ts, "nonsense", clientOpts{}); err == nil || !strings.Contains(err.Error(), codeUnauthorized) {
		t.Errorf("bad credential: %v", err)
	}
	// A second session of the same participant replaces the first.
	first := dialClient(t, ts, "room/x", clientOpts{})
	dialClient(t, ts, "room/x", clientOpts{})
	waitFor(t, 2*time.Second, "replaced", func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		return first.removed != nil && first.removed.Reason == "replaced"
	})
	ps, _ := ts.sfu.Participants("room")
	if len(ps) != 1 {
		t.Errorf("participants after replacement: %+v", ps)
	}
}

func TestH264IsForwardedWhenNegotiated(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	v := pub.publish(synthSpec{source: SourceCamera, h264: true})[0]
	rt := sub.track("pub/camera", 5*time.Second)
	waitFor(t, 3*time.Second, "H.264 video", func() bool { return len(rt.snapshot()) > 30 })
	checkIntact(t, rt, v)
	if p := rt.snapshot()[0].payload; p[0]&0x1f != 24 {
		t.Errorf("H.264 did not start with the keyframe's STAP-A: %x", p[:4])
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, ti := range sub.mids {
		if ti.Track == "pub/camera" && !strings.EqualFold(ti.Codec, "video/H264") {
			t.Errorf("offered codec %s", ti.Codec)
		}
	}
}

func TestVP9IsForwardedWhenNegotiated(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	v := pub.publish(synthSpec{source: SourceCamera, vp9: true})[0]
	rt := sub.track("pub/camera", 5*time.Second)
	waitFor(t, 3*time.Second, "VP9 video", func() bool { return len(rt.snapshot()) > 30 })
	checkIntact(t, rt, v)
	if k, _, _ := keyframeStart(codecVP9, rt.snapshot()[0].payload); !k {
		t.Error("VP9 did not start on a keyframe")
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, ti := range sub.mids {
		if ti.Track == "pub/camera" && !strings.EqualFold(ti.Codec, "video/VP9") {
			t.Errorf("offered codec %s", ti.Codec)
		}
	}
}

func TestScreenShareEnds(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	ss := pub.publish(synthSpec{source: SourceCamera}, synthSpec{source: SourceScreen})
	sub.track("pub/screen", 5*time.Second)
	pub.unpublish(ss[1])
	sub.waitEvent(EventTrackUnpublished, 3*time.Second, func(e Event) bool { return e.Participant == "pub" && e.Source == SourceScreen })
	if ps, _ := ts.sfu.Participants("room"); len(ps) != 2 || fmt.Sprint(ps[1].Tracks) != "[camera]" {
		t.Errorf("participants %+v", ps)
	}
	rt := sub.track("pub/screen", time.Second)
	time.Sleep(200 * time.Millisecond)
	n := len(rt.snapshot())

	// Sharing again works: a new screen track arrives.
	pub.publish(synthSpec{source: SourceScreen})
	waitFor(t, 3*time.Second, "second screen share", func() bool {
		k := 0
		for _, e := range sub.eventsOf(EventTrackPublished) {
			if e.Participant == "pub" && e.Source == SourceScreen {
				k++
			}
		}
		return k == 2
	})
	waitFor(t, 3*time.Second, "screen video again", func() bool { return len(rt.snapshot()) > n+10 })
}

func TestICETCPFallback(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, func(c *Config) { c.TCPAddr = "127.0.0.1:0" })
	sub := dialClient(t, ts, "room/sub", clientOpts{tcpOnly: true})
	pub := dialClient(t, ts, "room/pub", clientOpts{tcpOnly: true})
	v := pub.publish(synthSpec{source: SourceCamera})[0]
	rt := sub.track("pub/camera", 10*time.Second)
	waitFor(t, 3*time.Second, "video over TCP", func() bool { return len(rt.snapshot()) > 20 })
	checkIntact(t, rt, v)
	sub.mu.Lock()
	defer sub.mu.Unlock()
	tcp := false
	for _, c := range sub.cands {
		tcp = tcp || strings.Contains(c, " tcp ")
	}
	if !tcp {
		t.Errorf("no TCP candidate among %v", sub.cands)
	}
}

func TestPortRangeAndPublicIP(t *testing.T) {
	leakCheck(t)
	// A port range instead of the shared port.
	ts := newTestServer(t, func(c *Config) {
		c.UDPAddr = ""
		c.UDPPortMin, c.UDPPortMax = 41000, 41100
		c.LoopbackCandidates = true
	})
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	pub.publish(synthSpec{source: SourceMic})
	rt := sub.track("pub/mic", 5*time.Second)
	waitFor(t, 2*time.Second, "audio", func() bool { return len(rt.snapshot()) > 5 })
	sub.mu.Lock()
	for _, c := range sub.cands {
		var port int
		f := strings.Fields(c)
		if len(f) > 5 {
			fmt.Sscanf(f[5], "%d", &port)
		}
		if port < 41000 || port > 41100 {
			t.Errorf("candidate outside the range: %s", c)
		}
	}
	sub.mu.Unlock()

	// A public address replaces the private one in what clients are told.
	ts2 := newTestServer(t, func(c *Config) { c.PublicIPs = []string{"203.0.113.7"} })
	c := dialClient(t, ts2, "room/x", clientOpts{})
	c.publish(synthSpec{source: SourceMic})
	waitFor(t, 2*time.Second, "public candidate", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cand := range c.cands {
			if strings.Contains(cand, "203.0.113.7") {
				return true
			}
		}
		return false
	})
	c.mu.Lock()
	for _, cand := range c.cands {
		if strings.Contains(cand, "127.0.0.1") {
			t.Errorf("private address still offered: %s", cand)
		}
	}
	c.mu.Unlock()
}

// publisherDropper loses chosen outgoing video packets of a publisher the
// first time they are sent, after pion's NACK responder kept a copy.
type publisherDropper struct {
	mu      sync.Mutex
	every   uint16
	dropped map[uint16]bool
}

func (d *publisherDropper) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &pubDropInterceptor{d: d}, nil
}

type pubDropInterceptor struct {
	interceptor.NoOp
	d *publisherDropper
}

func (i *pubDropInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.HasPrefix(info.MimeType, "video/") {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		i.d.mu.Lock()
		drop := h.SequenceNumber%i.d.every == 0 && !i.d.dropped[h.SequenceNumber]
		if drop {
			i.d.dropped[h.SequenceNumber] = true
		}
		i.d.mu.Unlock()
		if drop {
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

func TestNACKTowardsPublisher(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	d := &publisherDropper{every: 20, dropped: map[uint16]bool{}}
	pub := dialClient(t, ts, "room/pub", clientOpts{interceptors: []interceptor.Factory{d}})
	v := pub.publish(synthSpec{source: SourceCamera})[0]
	rt := sub.track("pub/camera", 5*time.Second)
	time.Sleep(2 * time.Second)
	d.mu.Lock()
	lost := len(d.dropped)
	d.mu.Unlock()
	if lost < 3 {
		t.Fatalf("only %d packets lost", lost)
	}
	// The SFU asked the publisher for what it missed, got it, and the
	// subscriber's stream has no holes.
	v.halt()
	time.Sleep(500 * time.Millisecond)
	if v.nacks.Load() == 0 {
		t.Error("the SFU sent the publisher no NACK")
	}
	checkIntact(t, rt, v)
}

func TestRoomBitrateCapReachesPublishers(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	a := dialClient(t, ts, "room/a/bps=3000000", clientOpts{})
	b := dialClient(t, ts, "room/b/bps=3000000", clientOpts{})
	va := a.publish(synthSpec{source: SourceCamera})[0]
	vb := b.publish(synthSpec{source: SourceCamera})[0]
	waitFor(t, 3*time.Second, "REMB", func() bool { return va.remb.Load() > 0 && vb.remb.Load() > 0 })
	if va.remb.Load() != 1_500_000 || vb.remb.Load() != 1_500_000 {
		t.Errorf("REMB %d and %d, want an equal share of 3 Mbit/s", va.remb.Load(), vb.remb.Load())
	}
}

func TestBadMessagesDoNotEndTheSession(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	c := dialClient(t, ts, "room/c", clientOpts{})
	ctx := context.Background()
	_ = c.conn.Write(ctx, websocket.MessageText, []byte("{not json"))
	_ = c.conn.Write(ctx, websocket.MessageBinary, []byte("{}"))
	c.send(map[string]any{"type": "dance"})
	c.send(map[string]any{"type": "offer", "pc": "sub", "sdp": "v=0"})
	c.send(map[string]any{"type": "answer", "pc": "sub", "sdp": "v=0"})
	c.send(map[string]any{"type": "candidate", "pc": "pub", "candidate": map[string]any{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})
	c.send(map[string]any{"type": "offer", "pc": "pub", "sdp": "garbage"})
	c.send(map[string]any{"type": "mute", "source": "tuba", "muted": true})
	c.send(map[string]any{"type": "moderate", "action": "mute", "participant": "nobody"})
	c.send(map[string]any{"type": "join", "credential": "room/c"})
	waitFor(t, 2*time.Second, "errors", func() bool { return len(c.errorsSeen()) >= 10 })
	for _, e := range c.errorsSeen() {
		if e.Code == "" {
			t.Errorf("error without code: %+v", e)
		}
	}
	// Still in: another participant's arrival is announced.
	dialClient(t, ts, "room/d", clientOpts{})
	c.waitEvent(EventJoined, 2*time.Second, func(e Event) bool { return e.Participant == "d" })
}

func TestRTCPReports(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	sub := dialClient(t, ts, "room/sub", clientOpts{})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	v := pub.publish(synthSpec{source: SourceCamera})[0]
	rt := sub.track("pub/camera", 5*time.Second)
	// Sender reports go out every second (pion's default interval).
	waitFor(t, 4*time.Second, "sender reports and receiver reports", func() bool {
		rt.mu.Lock()
		n := len(rt.srs)
		rt.mu.Unlock()
		return n >= 1 && v.rrs.Load() >= 1
	})
	rt.mu.Lock()
	sr := rt.srs[len(rt.srs)-1]
	rt.mu.Unlock()
	pkts := rt.snapshot()
	last := pkts[len(pkts)-1]
	// The report speaks of the stream as rewritten: our SSRC's packet
	// count and an RTP time close to the timestamps we sent.
	if sr.PacketCount == 0 || sr.OctetCount == 0 {
		t.Errorf("empty sender report %+v", sr)
	}
	if d := int64(int32(last.ts - sr.RTPTime)); d < -90000 || d > 90000*3 {
		t.Errorf("sender report RTP time %d is %d ticks from the stream's %d", sr.RTPTime, d, last.ts)
	}
}

func TestCongestionControlDrivesLayersAndProbingRecovers(t *testing.T) {
	leakCheck(t)
	ts := newTestServer(t, nil)
	d := &dropper{rnd: rand.New(rand.NewPCG(1, 2)), dropped: map[uint16]bool{}}
	sub := dialClient(t, ts, "room/sub", clientOpts{interceptors: []interceptor.Factory{d}})
	pub := dialClient(t, ts, "room/pub", clientOpts{})
	pub.publish(synthSpec{source: SourceCamera, layers: []string{"q", "h", "f"}})
	rt := sub.track("pub/camera", 5*time.Second)
	p := ts.sfu.room("room").get("sub")
	// No override: pion's GCC estimate alone decides. A clean path first:
	// above the quarter layer.
	waitFor(t, 5*time.Second, "a layer above the quarter", func() bool {
		return steadyLayer(rt.snapshot(), 10) > 0
	})
	// Then a lossy one, as transport-wide CC feedback sees it: 30% of the
	// video never arrives the first time.
	d.mu.Lock()
	d.ratio = 0.3
	d.mu.Unlock()
	waitLayer(t, rt, 0, 8*time.Second)
	est := (*p.estimator.Load()).GetTargetBitrate()
	t.Logf("GCC estimate under 30%% loss: %d bit/s", est)
	if est >= 500_000 {
		t.Errorf("estimate %d did not fall below the half layer", est)
	}

	// The loss ends. The quarter layer alone would never show GCC more
	// bandwidth (it caps its estimate at 1.5x what it sees sent), so the
	// SFU pads towards the next layer until the estimate gets there.
	d.mu.Lock()
	d.ratio = 0
	d.mu.Unlock()
	start := time.Now()
	waitFor(t, 25*time.Second, "a layer above the quarter again", func() bool {
		return steadyLayer(rt.snapshot(), 10) > 0
	})
	rt.mu.Lock()
	padding := rt.padding
	rt.mu.Unlock()
	t.Logf("back above the quarter layer after %v, estimate %d bit/s, %d padding packets",
		time.Since(start).Round(100*time.Millisecond), (*p.estimator.Load()).GetTargetBitrate(), padding)
	if padding == 0 {
		t.Error("no probing padding was sent")
	}
}
