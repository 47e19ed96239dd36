package media

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// This file is a signalling client on pion, the way a browser would use
// the SFU, plus synthetic media sources. Tests and benchmarks drive it.

// testAuthorizer accepts credentials "room/participant[/moderator][/rec]".
func testAuthorizer() Authorizer {
	return AuthorizerFunc(func(_ context.Context, cred string) (Grant, error) {
		parts := strings.Split(cred, "/")
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return Grant{}, fmt.Errorf("bad credential %q", cred)
		}
		g := Grant{Room: parts[0], Participant: parts[1], Name: strings.ToUpper(parts[1])}
		for _, x := range parts[2:] {
			switch {
			case x == "moderator":
				g.Role = Moderator
			case x == "rec":
				g.Limits.Recording = true
			case strings.HasPrefix(x, "max="):
				fmt.Sscanf(x, "max=%d", &g.Limits.MaxParticipants)
			case strings.HasPrefix(x, "pubs="):
				fmt.Sscanf(x, "pubs=%d", &g.Limits.MaxPublishers)
			case strings.HasPrefix(x, "bps="):
				fmt.Sscanf(x, "bps=%d", &g.Limits.MaxBitrate)
			}
		}
		return g, nil
	})
}

type testServer struct {
	sfu *SFU
	srv *httptest.Server
	url string
}

func newTestServer(t testing.TB, mut func(*Config)) *testServer {
	t.Helper()
	return newTestServerOn(t, "127.0.0.1", mut)
}

// newTestServerOn is newTestServer with the SFU's UDP socket and the
// signalling server on ip.
func newTestServerOn(t testing.TB, ip string, mut func(*Config)) *testServer {
	t.Helper()
	cfg := Config{
		Authorizer: testAuthorizer(),
		UDPAddr:    net.JoinHostPort(ip, "0"),
		Logger:     quietLogger(),
	}
	if os.Getenv("MEDIA_TEST_LOG") == "" {
		cfg.LoggerFactory = quietPion{}
	}
	if mut != nil {
		mut(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	ts := &testServer{sfu: s, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	t.Cleanup(ts.close)
	return ts
}

func (ts *testServer) close() {
	ts.sfu.Close()
	ts.srv.Close()
}

// clientOpts shape a test client's pion stack.
type clientOpts struct {
	// interceptors run before pion's defaults on incoming media.
	interceptors []interceptor.Factory
	// udp, if set, is the only socket the client's ICE uses.
	udp net.PacketConn
	// dial, if set, dials the WebSocket's TCP connection.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// tcpOnly restricts ICE to TCP, as on a network that blocks UDP.
	tcpOnly bool
	// countOnly makes a subscriber count packets instead of keeping them
	// (benchmarks).
	countOnly bool
	// iface, if set, is the one network interface ICE gathers on instead
	// of the loopback interface (benchmarks over a veth pair).
	iface string
}

type testClient struct {
	t    testing.TB
	id   string
	conn *websocket.Conn
	api  *webrtc.API
	ctx  context.Context
	stop context.CancelFunc

	joined joinedMsg

	mu       sync.Mutex
	pub, sub *webrtc.PeerConnection
	pubSent  bool
	pubCands []webrtc.ICECandidateInit
	subSent  bool
	subCands []webrtc.ICECandidateInit
	mids     map[string]TrackInfo
	recv     map[string]*recvTrack
	events   []Event
	cands    []string // candidates the SFU sent
	errors   []errorMsg
	removed  *removedMsg
	answers  chan struct{}
	offers   int
	senders  []*synthSender
	wg       sync.WaitGroup
	readDone chan struct{}
	closing  atomic.Bool
	opts     clientOpts
}

// errorf reports a client failure unless the client is being closed,
// when the SFU's last renegotiations race with the teardown.
func (c *testClient) errorf(format string, args ...any) {
	if !c.closing.Load() {
		c.t.Errorf(format, args...)
	}
}

// recvTrack collects what a subscriber receives on one track.
type recvTrack struct {
	mu     sync.Mutex
	key    string
	pkts   []recvPkt
	notify chan struct{}
	count  atomic.Int64 // packets received
	bytes  atomic.Int64
	srs    []rtcp.SenderReport
	// padding counts padding-only packets.
	padding int
}

type recvPkt struct {
	seq     uint16
	ts      uint32
	marker  bool
	padding bool
	payload []byte
	at      time.Time
}

// snapshot returns the media packets received so far.
func (r *recvTrack) snapshot() []recvPkt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]recvPkt, 0, len(r.pkts))
	for _, p := range r.pkts {
		if !p.padding {
			out = append(out, p)
		}
	}
	return out
}

// all returns every packet received so far, padding included.
func (r *recvTrack) all() []recvPkt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recvPkt(nil), r.pkts...)
}

func newClientAPI(t testing.TB, o clientOpts) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	for _, f := range o.interceptors {
		reg.Add(f)
	}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{LoggerFactory: quietPion{}}
	iface := "lo"
	if o.iface != "" {
		iface = o.iface
	}
	se.SetIncludeLoopbackCandidate(iface == "lo")
	se.SetInterfaceFilter(func(name string) bool { return name == iface })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if o.tcpOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}
	se.SetICETimeouts(3*time.Second, 4*time.Second, time.Second)
	// The loss tests drop packets after decryption, so a retransmission
	// looks like a replay to SRTP; real loss happens before it.
	se.DisableSRTPReplayProtection(true)
	if o.udp != nil {
		se.SetICEUDPMux(ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: o.udp, Logger: quietPion{}.NewLogger("ice")}))
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
}

// dialClient connects and joins with credential.
func dialClient(t testing.TB, ts *testServer, cred string, o clientOpts) *testClient {
	t.Helper()
	c, err := tryDial(t, ts, cred, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tryDial(t testing.TB, ts *testServer, cred string, o clientOpts) (*testClient, error) {
	ctx, stop := context.WithCancel(context.Background())
	dopts := &websocket.DialOptions{}
	if o.dial != nil {
		dopts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: o.dial}}
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, ts.url, dopts)
	if err != nil {
		stop()
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	c := &testClient{
		t: t, conn: conn, ctx: ctx, stop: stop,
		api:      newClientAPI(t, o),
		opts:     o,
		mids:     map[string]TrackInfo{},
		recv:     map[string]*recvTrack{},
		answers:  make(chan struct{}, 16),
		readDone: make(chan struct{}),
	}
	c.send(map[string]any{"type": "join", "credential": cred})
	_, b, err := conn.Read(dctx)
	if err != nil {
		stop()
		conn.CloseNow()
		return nil, err
	}
	var head struct {
		Type string `json:"type"`
		Code string `json:"code"`
	}
	_ = json.Unmarshal(b, &head)
	if head.Type != msgJoined {
		stop()
		conn.CloseNow()
		return nil, fmt.Errorf("join: %s", b)
	}
	if err := json.Unmarshal(b, &c.joined); err != nil {
		stop()
		return nil, err
	}
	c.id = c.joined.Participant
	go c.readLoop()
	t.Cleanup(c.close)
	return c, nil
}

func (c *testClient) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Error(err)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	_ = c.conn.Write(ctx, websocket.MessageText, b)
}

func (c *testClient) readLoop() {
	defer close(c.readDone)
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		var m struct {
			Type      string                   `json:"type"`
			PC        string                   `json:"pc"`
			SDP       string                   `json:"sdp"`
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
			Tracks    []TrackInfo              `json:"tracks"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			c.errorf("client %s: bad message %s", c.id, b)
			continue
		}
		switch m.Type {
		case msgOffer:
			c.onOffer(m.SDP, m.Tracks)
		case msgAnswer:
			c.mu.Lock()
			pc := c.pub
			c.mu.Unlock()
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				c.errorf("client %s: set answer: %v", c.id, err)
			}
			c.answers <- struct{}{}
		case msgCandidate:
			c.mu.Lock()
			pc := c.pub
			if m.PC == pcSub {
				pc = c.sub
			}
			c.mu.Unlock()
			if pc == nil {
				c.errorf("client %s: candidate for %s before its description", c.id, m.PC)
				continue
			}
			c.mu.Lock()
			c.cands = append(c.cands, m.Candidate.Candidate)
			c.mu.Unlock()
			if err := pc.AddICECandidate(*m.Candidate); err != nil {
				c.errorf("client %s: add candidate: %v", c.id, err)
			}
		case msgEvent:
			var e eventMsg
			_ = json.Unmarshal(b, &e)
			c.mu.Lock()
			c.events = append(c.events, e.Event)
			c.mu.Unlock()
		case msgError:
			var e errorMsg
			_ = json.Unmarshal(b, &e)
			c.mu.Lock()
			c.errors = append(c.errors, e)
			c.mu.Unlock()
		case msgRemoved:
			var r removedMsg
			_ = json.Unmarshal(b, &r)
			c.mu.Lock()
			c.removed = &r
			c.mu.Unlock()
		}
	}
}

func (c *testClient) onOffer(sdpText string, tracks []TrackInfo) {
	c.mu.Lock()
	for _, ti := range tracks {
		c.mids[ti.Mid] = ti
	}
	pc := c.sub
	c.offers++
	c.mu.Unlock()
	if pc == nil {
		var err error
		pc, err = c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			c.errorf("%v", err)
			return
		}
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) { c.localCandidate(pcSub, cand) })
		pc.OnTrack(c.onTrack)
		c.mu.Lock()
		c.sub = pc
		c.mu.Unlock()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpText}); err != nil {
		c.errorf("client %s: set offer: %v", c.id, err)
		return
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		c.errorf("client %s: answer: %v", c.id, err)
		return
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		c.errorf("client %s: set answer: %v", c.id, err)
		return
	}
	c.send(map[string]any{"type": "answer", "pc": pcSub, "sdp": pc.LocalDescription().SDP})
	c.mu.Lock()
	c.subSent = true
	cands := c.subCands
	c.subCands = nil
	c.mu.Unlock()
	for _, cand := range cands {
		c.send(map[string]any{"type": "candidate", "pc": pcSub, "candidate": cand})
	}
}

func (c *testClient) localCandidate(pc string, cand *webrtc.ICECandidate) {
	if cand == nil {
		return
	}
	init := cand.ToJSON()
	c.mu.Lock()
	if pc == pcSub && !c.subSent {
		c.subCands = append(c.subCands, init)
		c.mu.Unlock()
		return
	}
	if pc == pcPub && !c.pubSent {
		c.pubCands = append(c.pubCands, init)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.send(map[string]any{"type": "candidate", "pc": pc, "candidate": init})
}

func (c *testClient) onTrack(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	mid := ""
	c.mu.Lock()
	sub := c.sub
	c.mu.Unlock()
	for _, x := range sub.GetTransceivers() {
		if x.Receiver() == recv {
			mid = x.Mid()
		}
	}
	c.mu.Lock()
	info := c.mids[mid]
	key := info.Track
	if key == "" {
		key = tr.StreamID() + "/" + tr.ID()
	}
	rt := c.recv[key]
	if rt == nil {
		rt = &recvTrack{key: key, notify: make(chan struct{}, 1)}
		c.recv[key] = rt
	}
	c.mu.Unlock()
	countOnly := c.opts.countOnly
	go func() {
		for {
			pkts, _, err := recv.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if sr, ok := p.(*rtcp.SenderReport); ok {
					rt.mu.Lock()
					rt.srs = append(rt.srs, *sr)
					rt.mu.Unlock()
				}
			}
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			if countOnly {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				rt.count.Add(1)
				rt.bytes.Add(int64(n))
				continue
			}
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			rt.count.Add(1)
			rt.mu.Lock()
			if len(p.Payload) == 0 {
				// Padding (the SFU probing bandwidth): numbered, empty.
				rt.padding++
				rt.pkts = append(rt.pkts, recvPkt{seq: p.SequenceNumber, ts: p.Timestamp, padding: true, at: time.Now()})
			} else {
				rt.pkts = append(rt.pkts, recvPkt{seq: p.SequenceNumber, ts: p.Timestamp, marker: p.Marker, payload: append([]byte(nil), p.Payload...), at: time.Now()})
			}
			rt.mu.Unlock()
			select {
			case rt.notify <- struct{}{}:
			default:
			}
		}
	}()
}

// track waits for a subscribed track to start arriving.
func (c *testClient) track(key string, within time.Duration) *recvTrack {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		rt := c.recv[key]
		c.mu.Unlock()
		if rt != nil {
			return rt
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("client %s: no track %s within %v", c.id, key, within)
	return nil
}

// publish offers the given sources on the pub connection and starts their
// synthetic media once connected.
func (c *testClient) publish(specs ...synthSpec) []*synthSender {
	c.t.Helper()
	c.mu.Lock()
	pc := c.pub
	c.mu.Unlock()
	if pc == nil {
		var err error
		pc, err = c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			c.t.Fatal(err)
		}
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) { c.localCandidate(pcPub, cand) })
		c.mu.Lock()
		c.pub = pc
		c.mu.Unlock()
	}
	sources := map[string]Source{}
	var out []*synthSender
	for _, sp := range specs {
		s := newSynthSender(c, pc, sp)
		sources[s.trackID] = sp.source
		out = append(out, s)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	c.send(map[string]any{"type": "offer", "pc": pcPub, "sdp": pc.LocalDescription().SDP, "sources": sources})
	c.mu.Lock()
	c.pubSent = true
	cands := c.pubCands
	c.pubCands = nil
	c.senders = append(c.senders, out...)
	c.mu.Unlock()
	for _, cand := range cands {
		c.send(map[string]any{"type": "candidate", "pc": pcPub, "candidate": cand})
	}
	select {
	case <-c.answers:
	case <-time.After(5 * time.Second):
		c.t.Fatal("no answer to publish offer")
	}
	for _, s := range out {
		s.start()
	}
	return out
}

func (c *testClient) eventsOf(typ EventType) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, e := range c.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (c *testClient) waitEvent(typ EventType, within time.Duration, match func(Event) bool) Event {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, e := range c.eventsOf(typ) {
			if match == nil || match(e) {
				return e
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("client %s: no %s event within %v", c.id, typ, within)
	return Event{}
}

func (c *testClient) errorsSeen() []errorMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]errorMsg(nil), c.errors...)
}

// close leaves politely and releases everything.
func (c *testClient) close() {
	c.closing.Store(true)
	c.mu.Lock()
	senders := c.senders
	c.senders = nil
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	for _, s := range senders {
		s.stop()
	}
	c.send(map[string]any{"type": "leave"})
	c.conn.Close(websocket.StatusNormalClosure, "")
	c.stop()
	<-c.readDone
	if pub != nil {
		pub.Close()
	}
	if sub != nil {
		sub.Close()
	}
}

// synthSpec describes a synthetic source.
type synthSpec struct {
	source Source
	// layers are the simulcast rids for video; nil for a single stream.
	layers []string
	// bitrate per layer (video) in bits per second; default 300 kbit/s,
	// simulcast default quarter/half/full 100k/300k/900k.
	bitrates []int
	fps      int
	// keyframeEvery sends a periodic keyframe every n frames; 0 only on
	// PLI and at the start.
	keyframeEvery int
	// level is the RFC 6464 level the audio claims (0 loud, 127 silent).
	level uint8
	// h264 sends H.264 (STAP-A with SPS and PPS, then FU-A) instead of VP8.
	h264 bool
	// vp9 sends VP9 payload descriptors (one spatial layer) instead.
	vp9 bool
}

// synthSender sends synthetic RTP: Opus-shaped audio every 20 ms, or VP8
// frames with real payload descriptors, keyframe bits and sizes, split
// into packets. Each payload carries (layer, frame, packet) so receivers
// can check it arrived intact.
type synthSender struct {
	c       *testClient
	pc      *webrtc.PeerConnection
	spec    synthSpec
	trackID string
	tracks  []*webrtc.TrackLocalStaticRTP
	sender  *webrtc.RTPSender
	done    chan struct{}
	wg      sync.WaitGroup // media generators
	rtcpWG  sync.WaitGroup // RTCP readers, which end with the RTP sender
	stopped atomic.Bool

	mu   sync.Mutex
	sent map[string][]byte // payload key -> payload
	// plis counts keyframe requests per layer; keyReq marks the next
	// frame of a layer as a keyframe.
	plis     [maxLayers]atomic.Int32
	keyReq   [maxLayers]atomic.Bool
	lastPLI  [maxLayers]atomic.Int64
	level    atomic.Int32 // RFC 6464 level sent with audio
	muted    atomic.Bool
	keySent  [maxLayers]atomic.Int32
	nacks    atomic.Int32
	sentPkts atomic.Int64
	remb     atomic.Int64 // last REMB bitrate received
	rrs      atomic.Int32 // receiver reports received
}

var synthSeq atomic.Int64

func newSynthSender(c *testClient, pc *webrtc.PeerConnection, sp synthSpec) *synthSender {
	s := &synthSender{c: c, pc: pc, spec: sp, done: make(chan struct{}), sent: map[string][]byte{}}
	s.trackID = fmt.Sprintf("%s-%d", sp.source, synthSeq.Add(1))
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if sp.h264 {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	}
	if sp.vp9 {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}
	}
	if sp.source == SourceMic {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	}
	rids := sp.layers
	if len(rids) == 0 {
		rids = []string{""}
	}
	for _, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, s.trackID, "stream-"+c.id, opts...)
		if err != nil {
			c.t.Fatal(err)
		}
		s.tracks = append(s.tracks, tr)
	}
	sender, err := pc.AddTrack(s.tracks[0])
	if err != nil {
		c.t.Fatal(err)
	}
	for _, tr := range s.tracks[1:] {
		if err := sender.AddEncoding(tr); err != nil {
			c.t.Fatal(err)
		}
	}
	s.sender = sender
	for i := range s.tracks {
		s.keyReq[i].Store(true)
	}
	s.level.Store(int32(sp.level))
	return s
}

func (s *synthSender) start() {
	for i, rid := range s.ridList() {
		i, rid := i, rid
		s.wg.Add(1)
		s.rtcpWG.Add(1)
		go func() {
			defer s.rtcpWG.Done()
			s.readRTCP(i, rid)
		}()
		go func() {
			defer s.wg.Done()
			if s.spec.source == SourceMic {
				s.runAudio()
			} else {
				s.runVideo(i)
			}
		}()
	}
}

func (s *synthSender) ridList() []string {
	if len(s.spec.layers) == 0 {
		return []string{""}
	}
	return s.spec.layers
}

func (s *synthSender) stop() {
	s.halt()
	_ = s.sender.Stop()
	s.rtcpWG.Wait()
}

func (s *synthSender) readRTCP(layer int, rid string) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = s.sender.ReadRTCP()
		} else {
			pkts, _, err = s.sender.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.TransportLayerNack:
				s.nacks.Add(1)
			case *rtcp.ReceiverReport:
				s.rrs.Add(1)
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				s.remb.Store(int64(p.(*rtcp.ReceiverEstimatedMaximumBitrate).Bitrate))
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.plis[layer].Add(1)
				s.lastPLI[layer].Store(time.Now().UnixNano())
				s.keyReq[layer].Store(true)
			}
		}
	}
}

func (s *synthSender) record(key string, payload []byte) {
	s.mu.Lock()
	s.sent[key] = append([]byte(nil), payload...)
	s.mu.Unlock()
}

// sentPayload looks up what was sent under the key embedded in payload.
func (s *synthSender) sentPayload(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.sent[key]
	return b, ok
}

func (s *synthSender) audioLevelID() uint8 {
	for _, x := range s.sender.GetParameters().HeaderExtensions {
		if x.URI == audioLevelURI {
			return uint8(x.ID)
		}
	}
	return 0
}

func (s *synthSender) runAudio() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	seq := uint16(1000)
	ts := uint32(5000)
	extID := s.audioLevelID()
	for n := 0; ; n++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if s.muted.Load() {
			ts += 960
			continue
		}
		// An Opus TOC byte (CELT FB 20 ms, mono) and a recognisable body.
		payload := make([]byte, 80)
		payload[0] = 0xf8
		key := fmt.Sprintf("a:%s:%d", s.trackID, n)
		copy(payload[1:], key)
		h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, Marker: n == 0}
		if extID != 0 {
			_ = h.SetExtension(extID, []byte{0x80 | byte(s.level.Load())&0x7f})
		}
		s.record(key, payload)
		_ = s.tracks[0].WriteRTP(&rtp.Packet{Header: h, Payload: payload})
		s.sentPkts.Add(1)
		seq++
		ts += 960
	}
}

// VP8 frame sizes per simulcast layer.
var synthDims = [maxLayers][2]int{{320, 180}, {640, 360}, {1280, 720}}

func (s *synthSender) runVideo(layer int) {
	fps := s.spec.fps
	if fps == 0 {
		fps = 30
	}
	rate := 300_000
	if len(s.spec.layers) > 1 {
		rate = []int{100_000, 300_000, 900_000}[min(layer, 2)]
	}
	if layer < len(s.spec.bitrates) {
		rate = s.spec.bitrates[layer]
	}
	li := layer
	if len(s.spec.layers) > 0 {
		li = layerIndex(s.spec.layers[layer])
	} else {
		li = 2
	}
	// Simulcast streams are told apart by their mid and rid header
	// extensions, which browsers add and pion leaves to its user.
	var midID, ridID uint8
	var mid, rid string
	if len(s.spec.layers) > 0 {
		rid = s.spec.layers[layer]
		for _, x := range s.sender.GetParameters().HeaderExtensions {
			switch x.URI {
			case sdp.SDESMidURI:
				midID = uint8(x.ID)
			case sdp.SDESRTPStreamIDURI:
				ridID = uint8(x.ID)
			}
		}
		for _, tr := range s.pc.GetTransceivers() {
			if tr.Sender() == s.sender {
				mid = tr.Mid()
			}
		}
	}
	frameBytes := rate / 8 / fps
	t := time.NewTicker(time.Second / time.Duration(fps))
	defer t.Stop()
	seq := uint16(20000 + 1000*layer)
	ts := uint32(1_000_000 * (layer + 1))
	pid := uint16(100 * layer)
	const mtu = 1100
	for frame := 0; ; frame++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		key := s.keyReq[layer].Swap(false) || (s.spec.keyframeEvery > 0 && frame%s.spec.keyframeEvery == 0)
		if key {
			s.keySent[layer].Add(1)
		}
		if s.spec.h264 {
			seq = s.sendH264(layer, li, frame, key, frameBytes, seq, ts)
			ts += uint32(90000 / fps)
			continue
		}
		// The VP8 frame: a frame tag, for keyframes the start code and
		// size, then filler that names the layer, frame and packet.
		body := make([]byte, max(frameBytes, 20))
		tag := byte(0x10) // show_frame
		if !key {
			tag |= 0x01
		}
		body[0], body[1], body[2] = tag, 0, 0
		off := 3
		if key {
			copy(body[3:], []byte{0x9d, 0x01, 0x2a})
			binary.LittleEndian.PutUint16(body[6:], uint16(synthDims[li][0]))
			binary.LittleEndian.PutUint16(body[8:], uint16(synthDims[li][1]))
			off = 10
		}
		for i := off; i < len(body); i++ {
			body[i] = byte(i)
		}
		for p, start := 0, 0; start < len(body); p++ {
			end := min(start+mtu, len(body))
			// Extended descriptor with a 15-bit picture id.
			desc := []byte{0x80, 0x80, byte(pid>>8) | 0x80, byte(pid)}
			if start == 0 {
				desc[0] |= 0x10 // S: start of partition 0
			}
			if s.spec.vp9 {
				// I (picture id), P for inter frames, B and E at the
				// frame's first and last packet; non-flexible, no layers.
				desc = []byte{0x80, byte(pid>>8) | 0x80, byte(pid)}
				if !key {
					desc[0] |= 0x40
				}
				if start == 0 {
					desc[0] |= 0x08
				}
				if end == len(body) {
					desc[0] |= 0x04
				}
			}
			mark := fmt.Sprintf("v:%s:%d:%d:%d;", s.trackID, li, frame, p)
			payload := append([]byte(nil), desc...)
			if start == 0 {
				payload = append(payload, body[:off]...)
				payload = append(payload, mark...)
				payload = append(payload, body[off:end]...)
			} else {
				payload = append(payload, mark...)
				payload = append(payload, body[start:end]...)
			}
			s.record(mark, payload)
			h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, Marker: end == len(body)}
			if midID != 0 && ridID != 0 {
				_ = h.SetExtension(midID, []byte(mid))
				_ = h.SetExtension(ridID, []byte(rid))
			}
			_ = s.tracks[layer].WriteRTP(&rtp.Packet{Header: h, Payload: payload})
			s.sentPkts.Add(1)
			seq++
			start = end
		}
		pid = (pid + 1) & 0x7fff
		ts += uint32(90000 / fps)
	}
}

// sendH264 sends one synthetic H.264 access unit: for a keyframe a STAP-A
// with SPS and PPS, then the slice (IDR or not) in FU-A fragments.
func (s *synthSender) sendH264(layer, li, frame int, key bool, size int, seq uint16, ts uint32) uint16 {
	var payloads [][]byte
	if key {
		sps := []byte{0x67, 0x42, 0xe0, 0x1f, 0xda, 0x02, 0x80}
		pps := []byte{0x68, 0xce, 0x3c, 0x80}
		stap := []byte{0x78}
		for _, nal := range [][]byte{sps, pps} {
			stap = append(stap, byte(len(nal)>>8), byte(len(nal)))
			stap = append(stap, nal...)
		}
		payloads = append(payloads, stap)
	}
	nalType := byte(1)
	if key {
		nalType = 5
	}
	body := make([]byte, max(size, 20))
	for i := range body {
		body[i] = byte(i)
	}
	for start := 0; start < len(body); {
		end := min(start+1100, len(body))
		fu := byte(nalType)
		if start == 0 {
			fu |= 0x80
		}
		if end == len(body) {
			fu |= 0x40
		}
		payloads = append(payloads, append([]byte{0x60 | 28, fu}, body[start:end]...))
		start = end
	}
	for p, pl := range payloads {
		mark := fmt.Sprintf("v:%s:%d:%d:%d;", s.trackID, li, frame, p)
		// The mark goes after the NAL (or FU) header bytes.
		hdr := 2
		if pl[0]&0x1f == 24 {
			hdr = 1
		}
		payload := append(append(append([]byte(nil), pl[:hdr]...), mark...), pl[hdr:]...)
		if pl[0]&0x1f == 24 {
			payload = append(pl[:len(pl):len(pl)], mark...) // after the aggregated NALs
		}
		s.record(mark, payload)
		h := rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: ts, Marker: p == len(payloads)-1}
		_ = s.tracks[layer].WriteRTP(&rtp.Packet{Header: h, Payload: payload})
		s.sentPkts.Add(1)
		seq++
	}
	return seq
}

// halt stops sending without stopping the RTP sender.
func (s *synthSender) halt() {
	if s.stopped.CompareAndSwap(false, true) {
		close(s.done)
		s.wg.Wait()
	}
}

// unpublish removes a source and renegotiates, as a browser does when a
// screen share ends.
func (c *testClient) unpublish(s *synthSender) {
	c.t.Helper()
	s.halt()
	c.mu.Lock()
	pc := c.pub
	c.mu.Unlock()
	if err := pc.RemoveTrack(s.sender); err != nil {
		c.t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	c.send(map[string]any{"type": "offer", "pc": pcPub, "sdp": pc.LocalDescription().SDP})
	select {
	case <-c.answers:
	case <-time.After(5 * time.Second):
		c.t.Fatal("no answer to the unpublishing offer")
	}
}

// synthKey extracts the key a synthetic payload carries.
func synthKey(payload []byte) string {
	s := string(payload)
	if i := strings.Index(s, "v:"); i >= 0 {
		if j := strings.IndexByte(s[i:], ';'); j > 0 {
			return s[i : i+j+1]
		}
	}
	if len(payload) > 1 && payload[0] == 0xf8 {
		if j := strings.IndexByte(s[1:], 0); j > 0 {
			return s[1 : 1+j]
		}
	}
	return ""
}

// synthLayer is the layer a synthetic video payload came from, -1 if none.
func synthLayer(payload []byte) int {
	parts := strings.Split(strings.TrimSuffix(synthKey(payload), ";"), ":")
	if len(parts) != 5 || parts[0] != "v" {
		return -1
	}
	var layer int
	fmt.Sscanf(parts[2], "%d", &layer)
	return layer
}

// isVP8KeyStart reports whether a received VP8 payload starts a keyframe.
func isVP8KeyStart(payload []byte) bool {
	k, _, _ := keyframeStart(codecVP8, payload)
	return k
}

// quietPion silences pion's logs in tests.
type quietPion struct{}

func (quietPion) NewLogger(string) logging.LeveledLogger { return quietPionLogger{} }

type quietPionLogger struct{}

func (quietPionLogger) Trace(string)          {}
func (quietPionLogger) Tracef(string, ...any) {}
func (quietPionLogger) Debug(string)          {}
func (quietPionLogger) Debugf(string, ...any) {}
func (quietPionLogger) Info(string)           {}
func (quietPionLogger) Infof(string, ...any)  {}
func (quietPionLogger) Warn(string)           {}
func (quietPionLogger) Warnf(string, ...any)  {}
func (quietPionLogger) Error(string)          {}
func (quietPionLogger) Errorf(string, ...any) {}
