package media

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// maxLayers is the number of simulcast layers a track may have: quarter,
// half and full resolution.
const maxLayers = 3

// Cache sizes, in packets: about a second of 1.5 Mbit/s video, and several
// seconds of audio, which is enough to answer NACKs within any usable RTT.
const (
	videoCacheSize = 512
	audioCacheSize = 128
)

// upTrack is one published track (a participant's mic, camera or screen)
// with up to three simulcast layers. It fans each packet out to its
// downTracks without ever waiting for one: see downTrack.offer.
type upTrack struct {
	key      string // "<participant>/<source>", the name subscribers use
	owner    *participant
	source   Source
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters
	ck       codecKind
	receiver *webrtc.RTPReceiver
	trackID  string // the publisher's msid track id, shared by its layers
	levelID  uint8  // negotiated RFC 6464 extension id, 0 when absent

	// mu serialises changes to layers; readers (every forwarded packet)
	// load them without it.
	mu     sync.Mutex
	layers [maxLayers]atomic.Pointer[upLayer]
	nextIx int // slot for a rid with no recognised name

	downs atomic.Pointer[[]*downTrack]

	selfMuted atomic.Bool
	blocked   atomic.Bool // muted or stopped by a moderator
	closed    atomic.Bool

	// Audio level accumulators for the active-speaker detector: the sum
	// of (127 - level) and the number of packets since the last tick.
	levelSum, levelCount atomic.Uint64
}

// upLayer is one incoming RTP stream (one simulcast layer).
type upLayer struct {
	up      *upTrack
	index   int8
	rid     string
	ssrc    uint32
	remote  *webrtc.TrackRemote
	cache   *packetCache
	created time.Time

	bytes      atomic.Uint64 // since the last bitrate sample
	bitrate    atomic.Int64  // bits per second, smoothed
	lastKeyReq atomic.Int64  // unix nanoseconds of the last PLI sent
	keyPending atomic.Bool   // a PLI was held back by the rate limit
	width      atomic.Int32
	height     atomic.Int32

	// Read-loop state.
	started bool
	highest uint16
	skipped uint16 // in-order padding-only packets dropped so far
}

func newUpTrack(owner *participant, source Source, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) *upTrack {
	up := &upTrack{
		key:      owner.id + "/" + string(source),
		owner:    owner,
		source:   source,
		kind:     remote.Kind(),
		codec:    remote.Codec(),
		receiver: recv,
		trackID:  remote.ID(),
	}
	up.ck = kindOfMime(up.codec.MimeType)
	for _, x := range recv.GetParameters().HeaderExtensions {
		if x.URI == audioLevelURI {
			up.levelID = uint8(x.ID)
		}
	}
	up.downs.Store(&[]*downTrack{})
	return up
}

// layerIndex maps the rid names browsers are told to use (see
// SIGNALLING.md) to quality order; other names take the next free slot.
func layerIndex(rid string) int {
	switch strings.ToLower(rid) {
	case "", "q", "l", "lo", "low", "0":
		return 0
	case "h", "m", "mid", "1":
		return 1
	case "f", "hi", "high", "2":
		return 2
	}
	return -1
}

// addLayer registers an incoming stream; false when all slots are taken.
func (up *upTrack) addLayer(remote *webrtc.TrackRemote) (*upLayer, bool) {
	up.mu.Lock()
	defer up.mu.Unlock()
	ix := layerIndex(remote.RID())
	if ix < 0 || up.layers[ix].Load() != nil {
		ix = -1
		for i := up.nextIx; i < maxLayers; i++ {
			if up.layers[i].Load() == nil {
				ix = i
				break
			}
		}
		if ix < 0 {
			return nil, false
		}
	}
	size := videoCacheSize
	if up.kind == webrtc.RTPCodecTypeAudio {
		size = audioCacheSize
	}
	l := &upLayer{up: up, index: int8(ix), rid: remote.RID(), ssrc: uint32(remote.SSRC()), remote: remote, cache: newPacketCache(size), created: time.Now()}
	up.layers[ix].Store(l)
	if ix >= up.nextIx {
		up.nextIx = ix + 1
	}
	return l, true
}

func (up *upTrack) layer(i int8) *upLayer {
	if i < 0 || int(i) >= maxLayers {
		return nil
	}
	return up.layers[i].Load()
}

func (up *upTrack) layerList() []*upLayer {
	var ls []*upLayer
	for i := range up.layers {
		if l := up.layers[i].Load(); l != nil {
			ls = append(ls, l)
		}
	}
	return ls
}

// removeLayer forgets a stream whose reader ended and reports whether
// none is left.
func (up *upTrack) removeLayer(l *upLayer) bool {
	up.mu.Lock()
	defer up.mu.Unlock()
	up.layers[l.index].CompareAndSwap(l, nil)
	for i := range up.layers {
		if up.layers[i].Load() != nil {
			return false
		}
	}
	return true
}

func (up *upTrack) forwarding() bool { return !up.selfMuted.Load() && !up.blocked.Load() }

func (up *upTrack) addDown(dt *downTrack) {
	up.mu.Lock()
	old := *up.downs.Load()
	n := make([]*downTrack, len(old), len(old)+1)
	copy(n, old)
	n = append(n, dt)
	up.downs.Store(&n)
	up.mu.Unlock()
}

func (up *upTrack) removeDown(dt *downTrack) {
	up.mu.Lock()
	old := *up.downs.Load()
	n := make([]*downTrack, 0, len(old))
	for _, d := range old {
		if d != dt {
			n = append(n, d)
		}
	}
	up.downs.Store(&n)
	up.mu.Unlock()
}

// resume makes every subscriber restart at the next keyframe, as after a
// layer switch, so the gap a mute left is invisible to their decoders.
func (up *upTrack) resume() {
	for _, dt := range *up.downs.Load() {
		dt.cur.Store(-1)
	}
	up.requestKeyframe(-1)
}

// requestKeyframe asks the publisher for a keyframe on layer i, or on all
// layers when i < 0.
func (up *upTrack) requestKeyframe(i int8) {
	if up.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	if i >= 0 {
		if l := up.layer(i); l != nil {
			l.requestKeyframe()
		}
		return
	}
	for _, l := range up.layerList() {
		l.requestKeyframe()
	}
}

// requestKeyframe sends a PLI for this stream unless one went out less
// than Config.KeyframeInterval ago: a keyframe is expensive for the
// publisher, and subscribers joining together need only one. A request
// that comes too soon is kept pending, and the room sends it when the
// interval is over unless a keyframe came first.
func (l *upLayer) requestKeyframe() {
	now := time.Now().UnixNano()
	last := l.lastKeyReq.Load()
	if now-last < int64(l.up.owner.sfu.cfg.KeyframeInterval) || !l.lastKeyReq.CompareAndSwap(last, now) {
		l.keyPending.Store(true)
		return
	}
	l.keyPending.Store(false)
	l.up.owner.writeRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
}

// readLoop is the publisher-side goroutine of one stream. Nothing in it
// waits on a subscriber.
func (l *upLayer) readLoop() {
	buf := make([]byte, 1500)
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			return
		}
		l.forward(buf[:n])
	}
}

func (l *upLayer) forward(b []byte) {
	info, ok := parseRTP(b)
	if !ok {
		return
	}
	up := l.up
	payload := info.payload(b)
	if len(payload) == 0 && l.started && info.seq == l.highest+1 {
		// Padding-only probes carry nothing for subscribers; renumbering
		// around them keeps their sequence free of gaps they would NACK.
		l.highest = info.seq
		l.skipped++
		return
	}
	if !l.started || seqAfter(info.seq, l.highest) {
		l.highest = info.seq
		l.started = true
	}
	adj := info.seq - l.skipped
	l.cache.store(info.seq, b)
	l.bytes.Add(uint64(len(b)))

	key := true
	if up.kind == webrtc.RTPCodecTypeVideo {
		var w, h int
		key, w, h = keyframeStart(up.ck, payload)
		if key {
			l.keyPending.Store(false)
			if w > 0 && h > 0 {
				l.width.Store(int32(w))
				l.height.Store(int32(h))
			}
		}
	}
	if !up.forwarding() {
		return
	}
	if up.levelID != 0 {
		if ext := info.extension(b, up.levelID); len(ext) > 0 {
			up.levelSum.Add(uint64(127 - ext[0]&0x7f))
			up.levelCount.Add(1)
		}
	}
	for _, dt := range *up.downs.Load() {
		dt.offer(l.index, info.seq, adj, key)
	}
}

// rtcpDrain reads the publisher's RTCP for one stream (sender reports) so
// the receiver report interceptor sees it.
func rtcpDrain(recv *webrtc.RTPReceiver, rid string) {
	for {
		var err error
		if rid == "" {
			_, _, err = recv.ReadRTCP()
		} else {
			_, _, err = recv.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
	}
}

// sampleBitrate updates the smoothed bitrate from the bytes counted over
// the last interval.
func (l *upLayer) sampleBitrate(interval time.Duration) {
	b := l.bytes.Swap(0)
	now := int64(float64(b*8) / interval.Seconds())
	old := l.bitrate.Load()
	if old == 0 || now == 0 {
		l.bitrate.Store(now)
		return
	}
	l.bitrate.Store((old*3 + now) / 4)
}
