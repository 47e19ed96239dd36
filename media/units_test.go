package media

import (
	"encoding/binary"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestPacketCache(t *testing.T) {
	c := newPacketCache(8)
	buf := make([]byte, 1500)
	for seq := uint16(65530); seq != 4; seq++ {
		c.store(seq, []byte{byte(seq)})
	}
	// The last 8 stored survive, across the wrap; older ones are gone.
	for seq := uint16(65532); seq != 4; seq++ {
		n, ok := c.get(seq, buf)
		if !ok || n != 1 || buf[0] != byte(seq) {
			t.Errorf("seq %d: %v %d %d", seq, ok, n, buf[0])
		}
	}
	if _, ok := c.get(65531, buf); ok {
		t.Error("overwritten packet still returned")
	}
	if _, ok := c.get(100, buf); ok {
		t.Error("never-stored packet returned")
	}
}

func TestParseRTP(t *testing.T) {
	h := rtp.Header{Version: 2, Marker: true, PayloadType: 96, SequenceNumber: 7, Timestamp: 9, SSRC: 11, CSRC: []uint32{1, 2}}
	_ = h.SetExtension(3, []byte{0x85})
	_ = h.SetExtension(5, []byte("abc"))
	p := rtp.Packet{Header: h, Payload: []byte("payload"), PaddingSize: 4}
	p.Header.Padding = true
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	info, ok := parseRTP(b)
	if !ok {
		t.Fatal("parse failed")
	}
	if info.seq != 7 || info.ts != 9 || info.ssrc != 11 || !info.marker || info.pt != 96 || info.padLen != 4 {
		t.Errorf("%+v", info)
	}
	if got := string(info.payload(b)); got != "payload" {
		t.Errorf("payload %q", got)
	}
	if ext := info.extension(b, 3); len(ext) != 1 || ext[0] != 0x85 {
		t.Errorf("ext 3: %v", ext)
	}
	if ext := info.extension(b, 5); string(ext) != "abc" {
		t.Errorf("ext 5: %q", ext)
	}
	if info.extension(b, 4) != nil {
		t.Error("absent extension found")
	}
	for _, bad := range [][]byte{nil, make([]byte, 11), {0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, ok := parseRTP(bad); ok {
			t.Errorf("parsed %x", bad)
		}
	}
}

func FuzzParseRTP(f *testing.F) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1}, Payload: []byte{1, 2, 3}}
	_ = p.Header.SetExtension(1, []byte{1})
	b, _ := p.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		info, ok := parseRTP(b)
		if !ok {
			return
		}
		_ = info.payload(b)
		for id := uint8(0); id < 16; id++ {
			_ = info.extension(b, id)
		}
		keyframeStart(codecVP8, info.payload(b))
		keyframeStart(codecVP9, info.payload(b))
		keyframeStart(codecH264, info.payload(b))
	})
}

func vp8Payload(key bool, w, h int) []byte {
	b := []byte{0x90, 0x80, 0x80, 0x01} // X, S; I; 15-bit picture id
	if key {
		frame := make([]byte, 10)
		frame[0] = 0x10
		copy(frame[3:], []byte{0x9d, 0x01, 0x2a})
		binary.LittleEndian.PutUint16(frame[6:], uint16(w))
		binary.LittleEndian.PutUint16(frame[8:], uint16(h))
		return append(b, frame...)
	}
	return append(b, 0x11, 0, 0, 1, 2, 3)
}

func TestKeyframeDetection(t *testing.T) {
	if k, w, h := keyframeStart(codecVP8, vp8Payload(true, 640, 360)); !k || w != 640 || h != 360 {
		t.Errorf("VP8 keyframe: %v %dx%d", k, w, h)
	}
	if k, _, _ := keyframeStart(codecVP8, vp8Payload(false, 0, 0)); k {
		t.Error("VP8 delta frame taken for a keyframe")
	}
	cont := vp8Payload(true, 640, 360)
	cont[0] &^= 0x10 // not the start of the partition
	if k, _, _ := keyframeStart(codecVP8, cont); k {
		t.Error("VP8 continuation taken for a keyframe start")
	}
	// H.264: IDR alone, SPS in a STAP-A, FU-A start of an IDR, and a P slice.
	cases := []struct {
		p   []byte
		key bool
	}{
		{[]byte{0x65, 0x88}, true},
		{[]byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{[]byte{0x7c, 0x85, 0x88}, true},
		{[]byte{0x7c, 0x05, 0x88}, false},
		{[]byte{0x41, 0x9a}, false},
	}
	for _, c := range cases {
		if k, _, _ := keyframeStart(codecH264, c.p); k != c.key {
			t.Errorf("H.264 %x: %v", c.p, k)
		}
	}
	// VP9: B set, P clear is a keyframe start.
	if k, _, _ := keyframeStart(codecVP9, []byte{0x88, 0x01, 0x00}); !k {
		t.Error("VP9 keyframe missed")
	}
	if k, _, _ := keyframeStart(codecVP9, []byte{0xc8, 0x01, 0x00}); k {
		t.Error("VP9 inter frame taken for a keyframe")
	}
	if k, _, _ := keyframeStart(codecOpus, []byte{1}); !k {
		t.Error("audio packets are always a place to start")
	}
}

func TestAllocate(t *testing.T) {
	sim := [maxLayers]int{150_000, 500_000, 1_500_000}
	cam := allocTrack{rates: sim, maxLayer: 2, current: -1}
	screen := allocTrack{rates: sim, maxLayer: 2, current: -1, screen: true}
	cases := []struct {
		name   string
		budget int
		tracks []allocTrack
		want   []int
	}{
		{"plenty", 10_000_000, []allocTrack{cam, cam}, []int{2, 2}},
		{"two cameras share", 1_300_000, []allocTrack{cam, cam}, []int{1, 1}},
		{"screen before camera", 2_000_000, []allocTrack{cam, screen}, []int{0, 2}},
		{"camera paused for the screen", 200_000, []allocTrack{cam, screen}, []int{-1, 0}},
		{"the first track never starves", 10_000, []allocTrack{cam, cam}, []int{0, -1}},
		{"display cap", 10_000_000, []allocTrack{{rates: sim, maxLayer: 1, current: -1}}, []int{1}},
		{"paused by subscriber", 10_000_000, []allocTrack{{rates: sim, maxLayer: -1, current: -1}, cam}, []int{-1, 2}},
		{"missing layer skipped", 10_000_000, []allocTrack{{rates: [maxLayers]int{150_000, 0, 0}, maxLayer: 2, current: -1}}, []int{0}},
		{"speaker first", 800_000, []allocTrack{cam, {rates: sim, maxLayer: 2, current: -1, speaker: true}}, []int{0, 1}},
	}
	for _, c := range cases {
		got := allocate(c.budget, c.tracks)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	// Hysteresis: at exactly the full layer's rate, a subscriber on it
	// stays, one below does not climb.
	on := allocate(1_500_000, []allocTrack{{rates: sim, maxLayer: 2, current: 2}})
	below := allocate(1_500_000, []allocTrack{{rates: sim, maxLayer: 2, current: 1}})
	if on[0] != 2 || below[0] != 1 {
		t.Errorf("hysteresis: on %v below %v", on, below)
	}
}

func TestLayerForSize(t *testing.T) {
	all := [maxLayers]bool{true, true, true}
	var unknown [maxLayers][2]int
	for _, c := range []struct{ w, h, want int }{{320, 180, 0}, {300, 250, 1}, {640, 360, 1}, {1280, 720, 2}, {1920, 1080, 2}, {0, 0, 2}} {
		if got := layerForSize(c.w, c.h, unknown, all); got != c.want {
			t.Errorf("%dx%d: %d, want %d", c.w, c.h, got, c.want)
		}
	}
	known := [maxLayers][2]int{{480, 270}, {960, 540}, {1920, 1080}}
	if got := layerForSize(640, 360, known, all); got != 1 {
		t.Errorf("known sizes: %d", got)
	}
	if got := layerForSize(640, 360, unknown, [maxLayers]bool{true, false, false}); got != 0 {
		t.Errorf("single layer: %d", got)
	}
}

func TestSpeakerDetector(t *testing.T) {
	var d speakerDetector
	now := time.Unix(0, 0)
	tick := func(l map[string]float64) (string, bool) {
		now = now.Add(speakerTick)
		return d.update(now, l)
	}
	if _, ch := tick(map[string]float64{"a": 10, "b": 5}); ch {
		t.Error("background noise made a speaker")
	}
	var id string
	var ch bool
	for i := 0; i < 3 && !ch; i++ {
		id, ch = tick(map[string]float64{"a": 95, "b": 10})
	}
	if !ch || id != "a" {
		t.Fatalf("a speaks: %q %v", id, ch)
	}
	// b as loud as a: no flicker.
	for i := 0; i < 8; i++ {
		if id, ch := tick(map[string]float64{"a": 95, "b": 96}); ch {
			t.Fatalf("flicker to %q", id)
		}
	}
	// a stops, b talks: b takes over.
	got := ""
	for i := 0; i < 8 && got == ""; i++ {
		if id, ch := tick(map[string]float64{"b": 95}); ch {
			got = id
		}
	}
	if got != "b" {
		t.Errorf("takeover: %q", got)
	}
	if !d.forget("b") || d.current != "" {
		t.Error("forget the speaker who left")
	}
}

func TestTURNCredentials(t *testing.T) {
	// Computed independently: base64(HMAC-SHA1("s3cret", "1700000000:alice")).
	u, p := TURNCredentials("s3cret", "alice", time.Unix(1700000000, 0))
	if u != "1700000000:alice" || p != "TtElzSjT0GdnTQ9xdcRNxx96yQs=" {
		t.Errorf("%s %s", u, p)
	}
	servers := iceServersFor([]ICEServer{
		{URLs: []string{"stun:stun.example.com"}},
		{URLs: []string{"turn:turn.example.com"}, Secret: "s3cret"},
		{URLs: []string{"turn:static.example.com"}, Username: "u", Credential: "c"},
	}, "alice", time.Unix(1700000000-3600, 0), time.Hour)
	b, _ := json.Marshal(servers)
	want := `[{"urls":["stun:stun.example.com"]},{"urls":["turn:turn.example.com"],"username":"1700000000:alice","credential":"TtElzSjT0GdnTQ9xdcRNxx96yQs="},{"urls":["turn:static.example.com"],"username":"u","credential":"c"}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestMatchCodec(t *testing.T) {
	h264 := func(pt int, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/H264", ClockRate: 90000, SDPFmtpLine: fmtp}, PayloadType: webrtc.PayloadType(pt)}
	}
	have := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/VP8", ClockRate: 90000}, PayloadType: 96},
		h264(102, "packetization-mode=1;profile-level-id=42001f"),
		h264(106, "packetization-mode=1;profile-level-id=42e01f"),
		h264(112, "packetization-mode=1;profile-level-id=64001f"),
	}
	want := webrtc.RTPCodecCapability{MimeType: "video/H264", SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"}
	if c, ok := matchCodec(want, have); !ok || c.PayloadType != 112 {
		t.Errorf("high profile: %v %v", c.PayloadType, ok)
	}
	if c, ok := matchCodec(webrtc.RTPCodecCapability{MimeType: "video/vp8"}, have); !ok || c.PayloadType != 96 {
		t.Errorf("vp8: %v %v", c.PayloadType, ok)
	}
	if _, ok := matchCodec(webrtc.RTPCodecCapability{MimeType: "video/AV1"}, have); ok {
		t.Error("AV1 matched")
	}
}

func TestRoleJSON(t *testing.T) {
	b, _ := json.Marshal(struct{ R Role }{Moderator})
	if string(b) != `{"R":"moderator"}` {
		t.Errorf("%s", b)
	}
	var v struct{ R Role }
	if err := json.Unmarshal([]byte(`{"R":"participant"}`), &v); err != nil || v.R != Participant {
		t.Errorf("%v %v", v.R, err)
	}
	if err := json.Unmarshal([]byte(`{"R":"king"}`), &v); err == nil {
		t.Error("unknown role accepted")
	}
}

func TestDispatcherKeepsOrderAndDrains(t *testing.T) {
	var got []int
	d := newDispatcher(func(e Event) { got = append(got, int(e.Time.Unix())) })
	for i := 0; i < 1000; i++ {
		d.emit(Event{Time: time.Unix(int64(i), 0)})
	}
	d.close()
	if len(got) != 1000 {
		t.Fatalf("%d events delivered", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d delivered as %d", i, v)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no Authorizer accepted")
	}
	bad := []Config{
		{Authorizer: testAuthorizer(), UDPPortMin: 10},
		{Authorizer: testAuthorizer(), UDPPortMin: 20, UDPPortMax: 10},
		{Authorizer: testAuthorizer(), PublicIPs: []string{"not-an-ip"}},
		{Authorizer: testAuthorizer(), UDPAddr: ":0"},
	}
	for i, c := range bad {
		if s, err := New(c); err == nil {
			s.Close()
			t.Errorf("config %d accepted", i)
		}
	}
	c, err := Config{Authorizer: testAuthorizer()}.withDefaults()
	if err != nil || c.UDPAddr != ":7882" || c.Limits.MaxParticipants != 100 || c.PingInterval != 5*time.Second {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

func TestNetworkOptions(t *testing.T) {
	// ICE-TCP on a port of its own, a public address, a port range.
	s, err := New(Config{Authorizer: testAuthorizer(), UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", PublicIPs: []string{"203.0.113.7"}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if s.TCPAddr() == nil || s.UDPAddr() == nil {
		t.Error("no TCP or UDP address")
	}
	s.Close()
	s, err = New(Config{Authorizer: testAuthorizer(), UDPPortMin: 40000, UDPPortMax: 40100, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if s.UDPAddr() != nil {
		t.Error("a port range has no shared address")
	}
	s.Close()
}

// benchTrack builds an upTrack with one layer and a downTrack writing to
// a countWriter, without PeerConnections.
func benchTrack(t testing.TB) (*upLayer, *downTrack, *countWriter) {
	s := &SFU{cfg: Config{KeyframeInterval: time.Hour}}
	up := &upTrack{key: "pub/camera", owner: &participant{sfu: s, id: "pub"}, source: SourceCamera, kind: webrtc.RTPCodecTypeVideo,
		codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}, ck: codecVP8}
	up.downs.Store(&[]*downTrack{})
	l := &upLayer{up: up, cache: newPacketCache(videoCacheSize), created: time.Now()}
	up.layers[0].Store(l)
	dt := newDownTrack(up, nil, nil)
	w := &countWriter{}
	dt.out, dt.ssrc, dt.pt = w, 5, 96
	dt.bound.Store(true)
	dt.target.Store(0)
	return l, dt, w
}

func rtpBytes(seq uint16, ts uint32, payload []byte) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1}, Payload: payload}).Marshal()
	return b
}

func TestRewriteSurvivesWrapAndReordering(t *testing.T) {
	l, dt, w := benchTrack(t)
	buf := make([]byte, 1500)
	send := func(seq uint16, kind uint8) {
		l.cache.store(seq, rtpBytes(seq, uint32(seq)*3000, vp8Payload(kind == itemSync, 640, 360)))
		dt.handle(item{dt: dt, seq: seq, adj: seq, kind: kind}, buf)
	}
	send(100, itemSync)
	send(99, itemPacket) // older than the keyframe we started on
	if w.n.Load() != 1 {
		t.Fatalf("a packet from before the sync point was forwarded")
	}
	first := dt.lastSeq
	// Well past a 16-bit wrap: nothing may be dropped.
	for i := 1; i <= 140000; i++ {
		send(uint16(100+i), itemPacket)
	}
	if got := w.n.Load(); got != 140001 {
		t.Fatalf("forwarded %d of 140001", got)
	}
	const total = 140000
	if want := first + uint16(total%65536); dt.lastSeq != want {
		t.Errorf("last sequence %d, want %d", dt.lastSeq, want)
	}
	// A late packet inside the window is still forwarded, with the number
	// it should have had.
	late := uint16((100 + total - 3) % 65536)
	send(late, itemPacket)
	if w.n.Load() != 140002 {
		t.Error("reordered packet dropped")
	}
	if e := dt.hist[int(first+uint16((total-3)%65536))%len(dt.hist)]; !e.valid || e.src != late {
		t.Errorf("history for the late packet: %+v", e)
	}
}

// stuckWriter never returns, like a subscriber whose socket blocks.
type stuckWriter struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (w *stuckWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return len(payload), nil
}

func TestSlowSubscriberNeverStallsThePublisher(t *testing.T) {
	l, good, gw := benchTrack(t)
	up := l.up
	goodPeer := newDownPeer(64)
	goodPeer.ready.Store(true)
	good.peer = goodPeer
	up.addDown(good)

	stuckPeer := newDownPeer(64)
	stuckPeer.ready.Store(true)
	stuck := newDownTrack(up, stuckPeer, nil)
	sw := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	stuck.out, stuck.ssrc, stuck.pt = sw, 6, 96
	stuck.bound.Store(true)
	stuck.target.Store(0)
	up.addDown(stuck)
	defer func() {
		close(sw.release)
		goodPeer.close()
		stuckPeer.close()
	}()

	// The first packet (a keyframe) reaches both; the stuck one's writer
	// then blocks for good.
	l.forward(rtpBytes(0, 0, vp8Payload(true, 640, 360)))
	<-sw.entered
	start := time.Now()
	const n = 5000
	for i := 1; i < n; i++ {
		l.forward(rtpBytes(uint16(i), uint32(i)*3000, vp8Payload(false, 0, 0)))
		if i%16 == 0 {
			// Let the good subscriber keep up, as a live stream would.
			for gw.n.Load() < int64(i-16) {
				time.Sleep(time.Microsecond)
			}
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("publisher loop took %v behind a stuck subscriber", d)
	}
	waitForT(t, 2*time.Second, func() bool { return gw.n.Load() == n })
	if stuck.dropped.Load() < n-1-64 {
		t.Errorf("the stuck subscriber dropped only %d packets (cur %d, queued %d, good dropped %d)", stuck.dropped.Load(), stuck.cur.Load(), len(stuckPeer.q), good.dropped.Load())
	}
}

func waitForT(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
