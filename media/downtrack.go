package media

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// rtpWriter is where a downTrack's packets go: a subscriber's
// PeerConnection (webrtc.TrackLocalWriter) or a recorder.
type rtpWriter interface {
	WriteRTP(header *rtp.Header, payload []byte) (int, error)
}

// Queue item kinds.
const (
	itemPacket     uint8 = iota
	itemSync             // first packet after a start, layer switch or resume: rebase
	itemRetransmit       // answer a NACK; seq is the subscriber's sequence number
)

type item struct {
	dt    *downTrack
	seq   uint16 // publisher's sequence number, or ours for itemRetransmit
	adj   uint16 // publisher's sequence number less skipped padding
	layer int8
	kind  uint8
}

// downPeer is one receiver of forwarded packets (a subscriber's
// PeerConnection, or a recording): one bounded queue and one writer
// goroutine. When the queue is full the packet is dropped for this receiver
// only; the subscriber NACKs the gap (answered from the publisher's cache)
// and gets a keyframe later. This is galene's rtpwriter idea with the queue
// per receiver, so a receiver whose socket blocks (ICE-TCP) stalls nobody.
type downPeer struct {
	q     chan item
	done  chan struct{}
	ready atomic.Bool // transport up: packets written now arrive
	once  sync.Once
	wg    sync.WaitGroup

	// Bandwidth probing (see participant.allocate): padding bytes still
	// to send, and the video track to send them on.
	probeBytes atomic.Int64
	probeDT    atomic.Pointer[downTrack]
}

// Padding packets carry the most padding RTP allows; a few follow the end
// of a frame.
const (
	padSize        = 255
	maxPadPerFrame = 4
)

func newDownPeer(queue int) *downPeer {
	p := &downPeer{q: make(chan item, queue), done: make(chan struct{})}
	p.wg.Add(1)
	go p.run()
	return p
}

func (p *downPeer) push(it item) bool {
	select {
	case p.q <- it:
		return true
	default:
		return false
	}
}

func (p *downPeer) run() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		select {
		case it := <-p.q:
			if it.dt.handle(it, buf) && it.dt == p.probeDT.Load() {
				// Probing: padding right after a frame ends, where no
				// late packet of the frame can collide with its number.
				for k := 0; k < maxPadPerFrame && p.probeBytes.Load() > 0; k++ {
					if !it.dt.pad() {
						break
					}
					p.probeBytes.Add(-padSize)
				}
			}
		case <-p.done:
			return
		}
	}
}

// close stops the writer and waits for it; queued packets are discarded.
func (p *downPeer) close() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

const (
	videoHistory = 1024
	audioHistory = 256
)

// histEntry maps a sequence number we sent to where the packet came from,
// so a NACK can be answered from the publisher's cache with the same
// rewritten header.
type histEntry struct {
	out, src uint16
	ts       uint32
	layer    int8
	valid    bool
	// VP8 renumbering the packet was sent with.
	picOff uint16
	tl0Off uint8
}

// downTrack forwards one upTrack to one downPeer. It implements
// webrtc.TrackLocal so pion negotiates it like any local track, while the
// packets come straight from the publisher's cache.
type downTrack struct {
	up   *upTrack
	peer *downPeer
	// sub is the subscribing participant; nil for a recording.
	sub *participant

	// Bind sets these before bound becomes true; the writer reads them
	// only after seeing bound.
	out         rtpWriter
	ssrc        uint32
	pt          uint8
	bound       atomic.Bool
	unsupported atomic.Bool
	sender      *webrtc.RTPSender
	mid         string

	// cur is the layer being forwarded, -1 while waiting for a keyframe
	// to (re)start on; target is the layer wanted, -1 for none.
	cur, target atomic.Int32
	// maxLayer is the subscriber's cap from its layer message (display
	// size); -1 when it paused the track.
	maxLayer    atomic.Int32
	dropped     atomic.Uint32
	retransmits atomic.Uint64
	padded      atomic.Uint64

	// Writer-goroutine state.
	started   bool
	delivered bool
	layer     int8
	seqOffset uint16
	tsOffset  uint32
	syncExt   int64 // unwrapped adj of the packet we last synced on
	lastExt   int64 // unwrapped adj of the newest packet forwarded since
	lastSeq   uint16
	lastTs    uint32
	lastWall  time.Time
	hist      []histEntry
	hdr       rtp.Header
	vp8       vp8Munger
}

func newDownTrack(up *upTrack, peer *downPeer, sub *participant) *downTrack {
	dt := &downTrack{up: up, peer: peer, sub: sub}
	dt.cur.Store(-1)
	dt.target.Store(-1)
	dt.maxLayer.Store(maxLayers - 1)
	n := videoHistory
	if up.kind == webrtc.RTPCodecTypeAudio {
		n = audioHistory
		dt.target.Store(0)
	}
	dt.hist = make([]histEntry, n)
	// Random starting points, as RFC 3550 asks of any sender.
	dt.lastSeq = uint16(rand.Uint32())
	dt.lastTs = rand.Uint32()
	return dt
}

// Bind is called by pion once the subscriber's answer fixed the codec.
func (dt *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, ok := matchCodec(dt.up.codec.RTPCodecCapability, ctx.CodecParameters())
	if !ok {
		// Failing Bind would fail the whole renegotiation; the track just
		// stays silent for a subscriber that cannot decode it.
		dt.unsupported.Store(true)
		if cs := ctx.CodecParameters(); len(cs) > 0 {
			return cs[0], nil
		}
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	dt.out = ctx.WriteStream()
	dt.ssrc = uint32(ctx.SSRC())
	dt.pt = uint8(c.PayloadType)
	dt.bound.Store(true)
	dt.requestKeyframe()
	return c, nil
}

// Unbind is called by pion when the track is removed or the connection
// closes.
func (dt *downTrack) Unbind(webrtc.TrackLocalContext) error {
	dt.bound.Store(false)
	return nil
}

// ID is the msid track id subscribers see: the source ("camera").
func (dt *downTrack) ID() string { return string(dt.up.source) }

// StreamID is the msid stream id: the publishing participant.
func (dt *downTrack) StreamID() string { return dt.up.owner.id }

// RID is empty: a subscriber receives one stream per track.
func (dt *downTrack) RID() string { return "" }

// Kind is the publisher's track kind.
func (dt *downTrack) Kind() webrtc.RTPCodecType { return dt.up.kind }

// offer is called on the publisher's read goroutine for every packet of
// layer. It decides with two atomic loads whether this subscriber wants the
// packet and queues it without blocking.
func (dt *downTrack) offer(layer int8, seq, adj uint16, key bool) {
	cur := dt.cur.Load()
	tgt := dt.target.Load()
	if cur == int32(layer) {
		if tgt < 0 {
			dt.cur.CompareAndSwap(cur, -1)
			return
		}
		if !dt.peer.push(item{dt: dt, seq: seq, adj: adj, layer: layer, kind: itemPacket}) {
			dt.dropped.Add(1)
		}
		return
	}
	if !key || tgt != int32(layer) || !dt.bound.Load() || !dt.peer.ready.Load() {
		return
	}
	if dt.cur.CompareAndSwap(cur, int32(layer)) {
		if !dt.peer.push(item{dt: dt, seq: seq, adj: adj, layer: layer, kind: itemSync}) {
			dt.cur.CompareAndSwap(int32(layer), -1)
			dt.dropped.Add(1)
		}
	}
}

// requestKeyframe asks for a keyframe on the layer this subscriber is
// waiting for, or else the one it receives.
func (dt *downTrack) requestKeyframe() {
	l := dt.target.Load()
	if l < 0 {
		l = dt.cur.Load()
	}
	if l >= 0 {
		dt.up.requestKeyframe(int8(l))
	}
}

// handle runs on the downPeer's writer goroutine. It reports whether it
// wrote the newest packet so far and that packet ends a frame.
func (dt *downTrack) handle(it item, buf []byte) (frameEnd bool) {
	if !dt.bound.Load() {
		return false
	}
	if it.kind == itemRetransmit {
		dt.retransmit(it.seq, buf)
		return false
	}
	l := dt.up.layer(it.layer)
	if l == nil {
		return false
	}
	n, ok := l.cache.get(it.seq, buf)
	if !ok {
		if it.kind == itemSync {
			dt.cur.CompareAndSwap(int32(it.layer), -1)
		}
		return false
	}
	b := buf[:n]
	info, ok := parseRTP(b)
	if !ok {
		return false
	}
	now := time.Now()
	if it.kind == itemSync {
		dt.rebase(it, info, now)
		if dt.up.ck == codecVP8 {
			dt.vp8.rebase(info.payload(b))
		}
	} else if !dt.started || it.layer != dt.layer {
		return false // a packet of the layer we left
	}
	// Sequence numbers wrap every 65536 packets (minutes of video), so
	// compare them unwrapped against the keyframe we switched on: an older
	// packet's number would collide with ones already sent.
	ext := dt.lastExt + int64(int16(it.adj-uint16(dt.lastExt)))
	if ext < dt.syncExt {
		return false
	}
	if ext > dt.lastExt {
		dt.lastExt = ext
	}
	outSeq := it.adj + dt.seqOffset
	outTs := info.ts + dt.tsOffset
	newest := seqAfter(outSeq, dt.lastSeq)
	if newest {
		dt.lastSeq, dt.lastTs, dt.lastWall = outSeq, outTs, now
	}
	if dt.up.ck == codecVP8 {
		dt.vp8.rewrite(info.payload(b), dt.vp8.picOff, dt.vp8.tl0Off, newest)
	}
	dt.hist[int(outSeq)%len(dt.hist)] = histEntry{out: outSeq, src: it.seq, ts: outTs, layer: it.layer, valid: true,
		picOff: dt.vp8.picOff, tl0Off: dt.vp8.tl0Off}
	wrote := dt.write(&info, b, outSeq, outTs)
	if !wrote && !dt.delivered {
		// The transport is not up yet (pion drops the packet silently):
		// start over at a later keyframe so the first one is not lost.
		dt.started = false
		dt.cur.Store(-1)
		return false
	}
	dt.delivered = true
	return newest && info.marker
}

// rebase makes the stream continue where this subscriber's last one ended:
// next sequence number, and a timestamp advanced by the wall-clock time
// since the last packet, so a layer switch or a resume looks like one
// continuous stream to the subscriber's jitter buffer.
func (dt *downTrack) rebase(it item, info rtpInfo, now time.Time) {
	clock := dt.up.codec.ClockRate
	if clock == 0 {
		clock = 90000
	}
	delta := uint32(1)
	if !dt.lastWall.IsZero() {
		if d := uint32(now.Sub(dt.lastWall).Seconds() * float64(clock)); d > 0 {
			delta = d
		}
	}
	dt.seqOffset = dt.lastSeq + 1 - it.adj
	dt.tsOffset = dt.lastTs + delta - info.ts
	dt.syncExt = 1<<32 + int64(it.adj)
	dt.lastExt = dt.syncExt
	dt.layer = it.layer
	dt.started = true
}

// pad sends one padding-only packet after the newest one, shifting the
// numbering of what follows so the stream stays gap-free. Receivers drop
// such packets before decoding; congestion control counts them.
func (dt *downTrack) pad() bool {
	if !dt.started || !dt.delivered {
		return false
	}
	seq := dt.lastSeq + 1
	h := &dt.hdr
	*h = rtp.Header{
		Version: 2, Padding: true, PaddingSize: padSize, PayloadType: dt.pt,
		SequenceNumber: seq, Timestamp: dt.lastTs, SSRC: dt.ssrc, Extensions: h.Extensions[:0],
	}
	if n, err := dt.out.WriteRTP(h, nil); err != nil || n == 0 {
		return false
	}
	dt.hist[int(seq)%len(dt.hist)] = histEntry{}
	dt.lastSeq = seq
	dt.seqOffset++
	dt.padded.Add(1)
	return true
}

func (dt *downTrack) retransmit(seq uint16, buf []byte) {
	e := dt.hist[int(seq)%len(dt.hist)]
	if !e.valid || e.out != seq {
		return
	}
	l := dt.up.layer(e.layer)
	if l == nil {
		return
	}
	n, ok := l.cache.get(e.src, buf)
	if !ok {
		return
	}
	info, ok := parseRTP(buf[:n])
	if !ok {
		return
	}
	if dt.up.ck == codecVP8 {
		dt.vp8.rewrite(info.payload(buf[:n]), e.picOff, e.tl0Off, false)
	}
	if dt.write(&info, buf[:n], e.out, e.ts) {
		dt.retransmits.Add(1)
	}
}

// write sends one packet with our SSRC, payload type and numbering. The
// publisher's header extensions are dropped: their ids were negotiated on
// another connection, and the subscriber's interceptors add their own.
func (dt *downTrack) write(info *rtpInfo, b []byte, seq uint16, ts uint32) bool {
	h := &dt.hdr
	*h = rtp.Header{
		Version:        2,
		Padding:        info.padLen > 0,
		PaddingSize:    byte(info.padLen),
		Marker:         info.marker,
		PayloadType:    dt.pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           dt.ssrc,
		Extensions:     h.Extensions[:0],
	}
	n, err := dt.out.WriteRTP(h, info.payload(b))
	return err == nil && n > 0
}

// rtcpLoop reads what the subscriber says about this track: keyframe
// requests go to the publisher, NACKs are answered from the cache. Reading
// also feeds the congestion controller (its interceptor sits in this path).
func (dt *downTrack) rtcpLoop(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				dt.requestKeyframe()
			case *rtcp.TransportLayerNack:
				for _, pair := range p.Nacks {
					pair.Range(func(seq uint16) bool {
						return dt.peer.push(item{dt: dt, seq: seq, kind: itemRetransmit})
					})
				}
			}
		}
	}
}
