package media

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// payloadWriter keeps what a downTrack writes.
type payloadWriter struct {
	mu   sync.Mutex
	pkts []rtp.Packet
}

func (w *payloadWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pkts = append(w.pkts, rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	return h.MarshalSize() + len(payload), nil
}

func (w *payloadWriter) all() []rtp.Packet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]rtp.Packet(nil), w.pkts...)
}

// vp8Desc is a VP8 payload with a 15-bit picture ID, TL0PICIDX and TID.
func vp8Desc(key bool, pic uint16, tl0 uint8) []byte {
	b := []byte{0x90, 0xe0, 0x80 | byte(pic>>8), byte(pic), tl0, 0x20}
	if key {
		return append(b, 0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01)
	}
	return append(b, 0x11, 0, 0, 1, 2, 3)
}

// TestVP8RenumberedAcrossLayers: a subscriber switched from one simulcast
// layer to another (each with its own picture ID and TL0PICIDX) sees both
// run on by one, and a retransmission carries the numbers first sent.
func TestVP8RenumberedAcrossLayers(t *testing.T) {
	s := &SFU{cfg: Config{KeyframeInterval: time.Hour}}
	owner := &participant{sfu: s, id: "pub"}
	up := &upTrack{key: "pub/camera", owner: owner, source: SourceCamera, kind: webrtc.RTPCodecTypeVideo,
		codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}, ck: codecVP8}
	up.downs.Store(&[]*downTrack{})
	var layers [2]*upLayer
	for i := range layers {
		layers[i] = &upLayer{up: up, index: int8(i), cache: newPacketCache(videoCacheSize), created: time.Now()}
		up.layers[i].Store(layers[i])
	}
	peer := newDownPeer(1024)
	peer.ready.Store(true)
	defer peer.close()
	dt := newDownTrack(up, peer, nil)
	w := &payloadWriter{}
	dt.out, dt.ssrc, dt.pt = w, 1234, 96
	dt.bound.Store(true)
	dt.target.Store(0)
	up.addDown(dt)

	send := func(l *upLayer, seq uint16, key bool, pic uint16, tl0 uint8) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: uint32(100 + l.index), SequenceNumber: seq,
			Timestamp: uint32(pic) * 3000, Marker: true}, Payload: vp8Desc(key, pic, tl0)}
		b, _ := p.Marshal()
		l.forward(b)
	}
	wait := func(n int) []rtp.Packet {
		deadline := time.Now().Add(5 * time.Second)
		for len(w.all()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d packets written, want %d", len(w.all()), n)
			}
			time.Sleep(time.Millisecond)
		}
		return w.all()
	}
	// Layer 0: pictures 30000..30004 (TL0PICIDX 7..11).
	for i := 0; i < 5; i++ {
		send(layers[0], uint16(500+i), i == 0, uint16(30000+i), uint8(7+i))
	}
	wait(5)
	// Switch to layer 1, whose counters are elsewhere: 12..14 (TL0 250..).
	dt.target.Store(1)
	send(layers[1], 9000, true, 12, 250)
	send(layers[0], 505, false, 30005, 12) // the layer left: dropped
	send(layers[1], 9001, false, 13, 251)
	send(layers[1], 9002, false, 14, 252)
	got := wait(8)
	var pics []uint16
	var tl0s []uint8
	for _, p := range got {
		f, ok := parseVP8Fields(p.Payload)
		if !ok || f.picOff < 0 || f.tl0Off < 0 || !f.wide {
			t.Fatalf("descriptor lost: %x", p.Payload)
		}
		pics = append(pics, f.pictureID(p.Payload))
		tl0s = append(tl0s, p.Payload[f.tl0Off])
	}
	for i := range pics {
		if pics[i] != uint16(30000+i) || tl0s[i] != uint8(7+i) {
			t.Fatalf("picture IDs %v, TL0PICIDX %v: want them to run on by one from 30000 and 7", pics, tl0s)
		}
	}
	// A NACK for the first packet of layer 1 gets it as first sent.
	dt.peer.push(item{dt: dt, seq: got[5].SequenceNumber, kind: itemRetransmit})
	re := wait(9)[8]
	if f, _ := parseVP8Fields(re.Payload); re.SequenceNumber != got[5].SequenceNumber || f.pictureID(re.Payload) != 30005 || re.Payload[f.tl0Off] != 12 {
		t.Errorf("retransmission: seq %d picture %d, want %d and 30005", re.SequenceNumber, f.pictureID(re.Payload), got[5].SequenceNumber)
	}
}

func TestParseVP8Fields(t *testing.T) {
	for _, c := range []struct {
		p      []byte
		ok     bool
		pic    int
		wide   bool
		tl0    int
		picVal uint16
	}{
		{[]byte{0x10, 0x01}, true, -1, false, -1, 0},               // no X
		{[]byte{0x90, 0x80, 0x05, 0x01}, true, 2, false, -1, 5},    // 7-bit
		{[]byte{0x90, 0x80, 0x81, 0x02}, true, 2, true, -1, 0x102}, // 15-bit
		{[]byte{0x90, 0x40, 0x09}, true, -1, false, 2, 0},          // L only
		{[]byte{0x90, 0xc0, 0x81}, false, 2, true, -1, 0},          // truncated
		{[]byte{0x90}, false, -1, false, -1, 0},
	} {
		f, ok := parseVP8Fields(c.p)
		if ok != c.ok || (ok && (f.picOff != c.pic || f.wide != c.wide || f.tl0Off != c.tl0)) {
			t.Errorf("%x: %+v %v", c.p, f, ok)
			continue
		}
		if ok && f.picOff >= 0 && f.pictureID(c.p) != c.picVal {
			t.Errorf("%x: picture ID %d, want %d", c.p, f.pictureID(c.p), c.picVal)
		}
	}
	// 7-bit IDs wrap at 128.
	p := []byte{0x90, 0x80, 0x7f, 0x01}
	f, _ := parseVP8Fields(p)
	f.setPictureID(p, (f.pictureID(p)+1)&f.mask())
	if p[2] != 0 {
		t.Errorf("7-bit wrap: %x", p)
	}
}
