package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// participant is one joined WebSocket with its two PeerConnections: pub,
// on which the client offers what it sends, and sub, on which the SFU
// offers what the client receives.
//
// All teardown happens on the goroutine serving the WebSocket (see
// SFU.serveWS): anything else that wants the participant gone records a
// reason and closes the WebSocket.
type participant struct {
	sfu  *SFU
	room *room
	id   string
	name string
	role Role

	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	sendq  chan outMsg
	reason atomic.Pointer[string]

	// mu guards the fields below and the start of goroutines (wg), so that
	// none starts after teardown began.
	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup
	pub      *webrtc.PeerConnection
	sources  map[string]Source // msid track id -> source, from offers
	ups      map[Source]*upTrack
	muted    map[Source]bool // self-muted sources, kept across republishing
	blockA   bool            // moderator muted the mic
	blockV   bool            // moderator stopped video
	pubReady bool            // answer sent: candidates may follow
	cutoff   *time.Timer     // closes the WebSocket of a removed participant
	pubCands []webrtc.ICECandidateInit

	// subMu serialises the subscriber connection's negotiation.
	subMu          sync.Mutex
	sub            *webrtc.PeerConnection
	down           *downPeer
	downs          map[*upTrack]*downTrack
	prefs          map[string]layerPref
	awaitingAnswer bool
	pendingOffer   bool
	pendingRestart bool // the next offer restarts ICE
	subReady       bool // first offer sent: candidates may follow
	subCands       []webrtc.ICECandidateInit

	estimator  atomic.Pointer[cc.BandwidthEstimator]
	bwOverride atomic.Int64 // bits per second; tests inject here
	lossUntil  atomic.Int64 // unix nanoseconds: no lossless floor before

	probeMu   sync.Mutex
	probing   bool
	probeFrom int       // estimate when this probe began (or last rose)
	probeHold time.Time // no probing before this
	joinedAt  time.Time
}

type layerPref struct {
	width, height int
	maxLayer      int // -1 unset
	paused        bool
}

type outMsg struct {
	data  []byte
	close bool // close the WebSocket after writing this
}

const sendQueue = 256

// maxClientEntries bounds what a client can make the SFU remember (track
// sources, layer preferences).
const maxClientEntries = 256

func newParticipant(s *SFU, conn *websocket.Conn, g Grant) *participant {
	ctx, cancel := context.WithCancel(s.ctx)
	return &participant{
		sfu:      s,
		id:       g.Participant,
		name:     g.Name,
		role:     g.Role,
		conn:     conn,
		ctx:      ctx,
		cancel:   cancel,
		sendq:    make(chan outMsg, sendQueue),
		sources:  map[string]Source{},
		ups:      map[Source]*upTrack{},
		muted:    map[Source]bool{},
		downs:    map[*upTrack]*downTrack{},
		prefs:    map[string]layerPref{},
		joinedAt: time.Now(),
	}
}

// goroutine starts f unless teardown has begun.
func (p *participant) goroutine(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// kill makes the serving goroutine tear the participant down.
func (p *participant) kill(reason string) {
	p.reason.CompareAndSwap(nil, &reason)
	p.conn.CloseNow()
}

func (p *participant) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		p.sfu.cfg.Logger.Error("media: encode message", "err", err)
		return
	}
	p.sendRaw(outMsg{data: b})
}

// sendRaw queues without blocking; a client that cannot keep up with its
// signalling is broken and is dropped.
func (p *participant) sendRaw(m outMsg) {
	select {
	case p.sendq <- m:
	default:
		p.kill("slow")
	}
}

func (p *participant) sendError(req, code, msg string) {
	p.send(errorMsg{Type: msgError, Code: code, Message: msg, Request: req})
}

// writeLoop owns writes to the WebSocket.
func (p *participant) writeLoop() {
	for {
		select {
		case m := <-p.sendq:
			ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
			err := p.conn.Write(ctx, websocket.MessageText, m.data)
			cancel()
			if err != nil {
				p.kill("closed")
				return
			}
			if m.close {
				p.conn.Close(websocket.StatusNormalClosure, "")
				return
			}
		case <-p.ctx.Done():
			return
		}
	}
}

// pingLoop notices a peer that vanished without closing its TCP connection.
func (p *participant) pingLoop() {
	t := time.NewTicker(p.sfu.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(p.ctx, p.sfu.cfg.PingTimeout)
			err := p.conn.Ping(ctx)
			cancel()
			if err != nil {
				if p.ctx.Err() == nil {
					p.kill("timeout")
				}
				return
			}
		case <-p.ctx.Done():
			return
		}
	}
}

// start creates the subscriber connection and the writer goroutines.
func (p *participant) start() error {
	api, err := p.sfu.eng.subscriberAPI(func(est cc.BandwidthEstimator) { p.estimator.Store(&est) })
	if err != nil {
		return err
	}
	sub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	p.subMu.Lock()
	p.sub = sub
	p.down = newDownPeer(p.sfu.cfg.SubscriberQueue)
	p.subMu.Unlock()
	sub.OnICECandidate(func(c *webrtc.ICECandidate) { p.localCandidate(pcSub, c) })
	sub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.sfu.cfg.Logger.Debug("media: subscriber connection", "participant", p.id, "state", s)
		switch s {
		case webrtc.PeerConnectionStateConnected:
			p.down.ready.Store(true)
			p.subMu.Lock()
			dts := make([]*downTrack, 0, len(p.downs))
			for _, dt := range p.downs {
				dts = append(dts, dt)
			}
			p.subMu.Unlock()
			for _, dt := range dts {
				dt.requestKeyframe()
			}
		case webrtc.PeerConnectionStateFailed:
			p.kill("timeout")
		case webrtc.PeerConnectionStateClosed:
			p.kill("closed")
		}
	})
	p.goroutine(p.writeLoop)
	p.goroutine(p.pingLoop)
	return nil
}

// readLoop handles client messages until the WebSocket fails.
func (p *participant) readLoop() {
	for {
		typ, b, err := p.conn.Read(p.ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				p.reason.CompareAndSwap(nil, ptr("closed"))
			} else {
				p.reason.CompareAndSwap(nil, ptr("timeout"))
			}
			return
		}
		if typ != websocket.MessageText {
			p.sendError("", codeBadRequest, "text messages only")
			continue
		}
		var m clientMsg
		if err := json.Unmarshal(b, &m); err != nil {
			p.sendError("", codeBadRequest, "malformed JSON")
			continue
		}
		if done := p.handle(m); done {
			return
		}
	}
}

func ptr[T any](v T) *T { return &v }

func (p *participant) handle(m clientMsg) (done bool) {
	switch m.Type {
	case msgOffer:
		if m.PC != pcPub {
			p.sendError(m.Type, codeBadRequest, `clients offer only on "pub"`)
			return false
		}
		if err := p.onPubOffer(m); err != nil {
			p.sendError(m.Type, codeBadRequest, err.Error())
		}
	case msgAnswer:
		if m.PC != pcSub {
			p.sendError(m.Type, codeBadRequest, `clients answer only on "sub"`)
			return false
		}
		if err := p.onSubAnswer(m.SDP); err != nil {
			p.sendError(m.Type, codeBadRequest, err.Error())
		}
	case msgCandidate:
		if err := p.remoteCandidate(m); err != nil {
			p.sendError(m.Type, codeBadRequest, err.Error())
		}
	case msgMute:
		if !m.Source.valid() {
			p.sendError(m.Type, codeBadRequest, "unknown source")
			return false
		}
		p.setSelfMuted(m.Source, m.Muted)
	case msgLayer:
		p.setLayerPref(m)
	case msgModerate:
		if err := p.moderate(m); err != nil {
			p.sendError(m.Type, codeOf(err), err.Error())
		}
	case msgRecord:
		if p.getRole() != Moderator {
			p.sendError(m.Type, codeForbidden, "only moderators record")
			return false
		}
		if err := p.room.setRecording(m.On, p.id); err != nil {
			p.sendError(m.Type, codeOf(err), err.Error())
		}
	case msgICERestart:
		p.restartSub()
	case msgLeave:
		p.reason.CompareAndSwap(nil, ptr("leave"))
		return true
	case msgJoin:
		p.sendError(m.Type, codeBadRequest, "already joined")
	default:
		p.sendError(m.Type, codeBadRequest, "unknown message type")
	}
	return false
}

func codeOf(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return codeForbidden
	case errors.Is(err, ErrNotFound):
		return codeNotFound
	case errors.Is(err, ErrRecordingUnavailable):
		return codeRecording
	}
	return codeBadRequest
}

// localCandidate sends our candidates, holding them back until the
// description they belong to has been queued, so a client never gets a
// candidate for a connection it has not heard of.
func (p *participant) localCandidate(pc string, c *webrtc.ICECandidate) {
	if c == nil {
		return
	}
	init := c.ToJSON()
	if pc == pcSub {
		p.subMu.Lock()
		if !p.subReady {
			p.subCands = append(p.subCands, init)
			p.subMu.Unlock()
			return
		}
		p.subMu.Unlock()
	} else {
		p.mu.Lock()
		if !p.pubReady {
			p.pubCands = append(p.pubCands, init)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	p.send(candidateMsg{Type: msgCandidate, PC: pc, Candidate: init})
}

func (p *participant) remoteCandidate(m clientMsg) error {
	if m.Candidate == nil || m.Candidate.Candidate == "" {
		return nil // end of candidates
	}
	var pc *webrtc.PeerConnection
	switch m.PC {
	case pcPub:
		p.mu.Lock()
		pc = p.pub
		p.mu.Unlock()
	case pcSub:
		p.subMu.Lock()
		pc = p.sub
		p.subMu.Unlock()
	}
	if pc == nil {
		return fmt.Errorf("no %q connection", m.PC)
	}
	return pc.AddICECandidate(*m.Candidate)
}

// onPubOffer answers the client's offer for what it publishes; new tracks
// arrive through OnTrack.
func (p *participant) onPubOffer(m clientMsg) error {
	p.mu.Lock()
	for id, s := range m.Sources {
		if s.valid() && len(p.sources) < maxClientEntries {
			p.sources[id] = s
		}
	}
	pc := p.pub
	p.mu.Unlock()
	if pc == nil {
		var err error
		pc, err = p.sfu.eng.pubAPI.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			return err
		}
		pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.localCandidate(pcPub, c) })
		pc.OnTrack(p.onTrack)
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			p.sfu.cfg.Logger.Debug("media: publisher connection", "participant", p.id, "state", s)
			switch s {
			case webrtc.PeerConnectionStateFailed:
				p.kill("timeout")
			case webrtc.PeerConnectionStateClosed:
				p.kill("closed")
			}
		})
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return pc.Close()
		}
		p.pub = pc
		p.mu.Unlock()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	p.send(sdpMsg{Type: msgAnswer, PC: pcPub, SDP: pc.LocalDescription().SDP})
	p.mu.Lock()
	p.pubReady = true
	cands := p.pubCands
	p.pubCands = nil
	p.mu.Unlock()
	for _, c := range cands {
		p.send(candidateMsg{Type: msgCandidate, PC: pcPub, Candidate: c})
	}
	return nil
}

// sourceOf says what a remote track carries: as the client declared in
// its offer, else "screen" if its ids say so, else mic or camera by kind.
func (p *participant) sourceOf(t *webrtc.TrackRemote) Source {
	p.mu.Lock()
	s, ok := p.sources[t.ID()]
	p.mu.Unlock()
	if ok {
		return s
	}
	if t.Kind() == webrtc.RTPCodecTypeAudio {
		return SourceMic
	}
	if strings.Contains(strings.ToLower(t.ID()), "screen") || strings.Contains(strings.ToLower(t.StreamID()), "screen") {
		return SourceScreen
	}
	return SourceCamera
}

func (p *participant) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	source := p.sourceOf(remote)
	p.sfu.cfg.Logger.Debug("media: track", "participant", p.id, "source", source, "rid", remote.RID(), "codec", remote.Codec().MimeType)
	if (remote.Kind() == webrtc.RTPCodecTypeAudio) != (source == SourceMic) {
		p.sendError(msgOffer, codeBadRequest, fmt.Sprintf("track %s: source %s does not match its kind", remote.ID(), source))
		_ = recv.Stop()
		return
	}
	p.mu.Lock()
	up := p.ups[source]
	fresh := up == nil || up.receiver != recv
	var old *upTrack
	if fresh {
		old = up
		up = newUpTrack(p, source, remote, recv)
		up.selfMuted.Store(p.muted[source])
		up.blocked.Store(p.blockedLocked(source))
	}
	p.mu.Unlock()

	if fresh {
		if old != nil {
			p.unpublish(old)
		}
		if err := p.room.admitPublisher(p); err != nil {
			p.sendError(msgOffer, codePublisherFull, err.Error())
			_ = recv.Stop()
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.ups[source] = up
		p.mu.Unlock()
	}
	l, ok := up.addLayer(remote)
	if !ok {
		return
	}
	started := p.goroutine(func() {
		l.readLoop()
		if up.removeLayer(l) {
			p.unpublish(up)
		}
	})
	if !started {
		return
	}
	p.goroutine(func() { rtcpDrain(recv, remote.RID()) })
	if fresh {
		p.room.publish(up)
	} else {
		// A new simulcast layer: subscribers may now want it.
		p.room.reallocate()
	}
}

func (p *participant) blockedLocked(s Source) bool {
	if s == SourceMic {
		return p.blockA
	}
	return p.blockV
}

// unpublish withdraws a track from the room, once.
func (p *participant) unpublish(up *upTrack) {
	if !up.closed.CompareAndSwap(false, true) {
		return
	}
	p.mu.Lock()
	if p.ups[up.source] == up {
		delete(p.ups, up.source)
	}
	p.mu.Unlock()
	p.room.unpublish(up)
}

func (p *participant) writeRTCP(pkts []rtcp.Packet) {
	p.mu.Lock()
	pc := p.pub
	p.mu.Unlock()
	if pc != nil {
		_ = pc.WriteRTCP(pkts)
	}
}

// subscribe starts forwarding ups to this participant, with one offer for
// all of them. Idempotent.
func (p *participant) subscribe(ups ...*upTrack) {
	added := 0
	for _, up := range ups {
		if p.addDown(up) {
			added++
		}
	}
	if added > 0 {
		p.allocate()
		p.negotiate()
	}
}

func (p *participant) addDown(up *upTrack) bool {
	if up.owner == p {
		return false
	}
	p.subMu.Lock()
	if p.sub == nil || p.downs[up] != nil || up.closed.Load() || p.ctx.Err() != nil {
		p.subMu.Unlock()
		return false
	}
	dt := newDownTrack(up, p.down, p)
	sender, err := p.sub.AddTrack(dt)
	if err != nil {
		p.subMu.Unlock()
		p.sfu.cfg.Logger.Warn("media: subscribe", "participant", p.id, "track", up.key, "err", err)
		return false
	}
	for _, tr := range p.sub.GetTransceivers() {
		if tr.Sender() == sender {
			// Offer exactly the publisher's codec (the SFU never
			// transcodes), under this connection's own payload type.
			_ = tr.SetCodecPreferences([]webrtc.RTPCodecParameters{{RTPCodecCapability: up.codec.RTPCodecCapability}})
		}
	}
	dt.sender = sender
	p.downs[up] = dt
	if pref, ok := p.prefs[up.key]; ok {
		dt.maxLayer.Store(int32(pref.layerFor(up)))
	}
	p.subMu.Unlock()
	if !p.goroutine(func() { dt.rtcpLoop(sender) }) {
		return false
	}
	up.addDown(dt)
	return true
}

// unsubscribe stops forwarding up to this participant.
func (p *participant) unsubscribe(up *upTrack) {
	p.subMu.Lock()
	dt := p.downs[up]
	delete(p.downs, up)
	if dt != nil && p.sub != nil {
		_ = p.sub.RemoveTrack(dt.sender)
	}
	p.subMu.Unlock()
	if dt == nil {
		return
	}
	up.removeDown(dt)
	p.negotiate()
}

// negotiate sends a new offer on the subscriber connection, or, while one
// is unanswered, remembers to send another when the answer comes: one
// offer in flight at a time, and only the SFU offers on this connection.
func (p *participant) negotiate() {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.sub == nil || p.ctx.Err() != nil {
		return
	}
	if p.awaitingAnswer {
		p.pendingOffer = true
		return
	}
	var opts *webrtc.OfferOptions
	if p.pendingRestart {
		opts = &webrtc.OfferOptions{ICERestart: true}
		p.pendingRestart = false
	}
	offer, err := p.sub.CreateOffer(opts)
	if err != nil {
		p.sfu.cfg.Logger.Warn("media: create offer", "participant", p.id, "err", err)
		return
	}
	if err := p.sub.SetLocalDescription(offer); err != nil {
		p.sfu.cfg.Logger.Warn("media: set offer", "participant", p.id, "err", err)
		return
	}
	p.awaitingAnswer = true
	var tracks []TrackInfo
	for _, tr := range p.sub.GetTransceivers() {
		s := tr.Sender()
		if s == nil || s.Track() == nil {
			continue
		}
		dt, ok := s.Track().(*downTrack)
		if !ok {
			continue
		}
		dt.mid = tr.Mid()
		tracks = append(tracks, TrackInfo{
			Mid: tr.Mid(), Track: dt.up.key, Participant: dt.up.owner.id, Source: dt.up.source,
			Kind: dt.up.kind.String(), StreamID: dt.StreamID(), TrackID: dt.ID(),
			Layers: len(dt.up.layerList()), Codec: dt.up.codec.MimeType,
		})
	}
	p.sfu.cfg.Logger.Debug("media: offer", "participant", p.id, "tracks", len(tracks))
	p.send(sdpMsg{Type: msgOffer, PC: pcSub, SDP: p.sub.LocalDescription().SDP, Tracks: tracks})
	if !p.subReady {
		p.subReady = true
		for _, c := range p.subCands {
			p.send(candidateMsg{Type: msgCandidate, PC: pcSub, Candidate: c})
		}
		p.subCands = nil
	}
}

// restartSub makes the next subscriber offer, at once or after the answer
// awaited, one with new ICE credentials: the client asks for it when its
// network changed (SIGNALLING.md, iceRestart).
func (p *participant) restartSub() {
	p.subMu.Lock()
	p.pendingRestart = true
	p.subMu.Unlock()
	p.negotiate()
}

func (p *participant) onSubAnswer(sdp string) error {
	p.subMu.Lock()
	if !p.awaitingAnswer {
		p.subMu.Unlock()
		return errors.New("no offer to answer")
	}
	err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	p.awaitingAnswer = false
	again := p.pendingOffer
	p.pendingOffer = false
	p.subMu.Unlock()
	if again || err != nil {
		// After a rejected answer the connection is back to our offer;
		// a fresh one is the way out.
		if err != nil {
			p.subMu.Lock()
			_ = p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback})
			p.subMu.Unlock()
		}
		p.negotiate()
	}
	return err
}

func (p *participant) setSelfMuted(s Source, muted bool) {
	p.mu.Lock()
	p.muted[s] = muted
	up := p.ups[s]
	blocked := p.blockedLocked(s)
	p.mu.Unlock()
	if up != nil {
		was := up.forwarding()
		up.selfMuted.Store(muted)
		if !was && up.forwarding() {
			up.resume()
		}
	}
	p.room.emit(Event{Type: EventMute, Participant: p.id, Source: s, Muted: muted || blocked, Blocked: blocked})
}

// block is a moderator muting a participant's mic (video false) or
// stopping their video, or lifting that.
func (p *participant) block(video, on bool, by string) {
	p.mu.Lock()
	if video {
		p.blockV = on
	} else {
		p.blockA = on
	}
	var ups []*upTrack
	for s, up := range p.ups {
		if (s == SourceMic) != video {
			ups = append(ups, up)
		}
	}
	sources := []Source{SourceMic}
	if video {
		sources = []Source{SourceCamera, SourceScreen}
	}
	muted := map[Source]bool{}
	for _, s := range sources {
		muted[s] = p.muted[s]
	}
	p.mu.Unlock()
	for _, up := range ups {
		was := up.forwarding()
		up.blocked.Store(on)
		if !was && up.forwarding() {
			up.resume()
		}
	}
	for _, s := range sources {
		p.room.emit(Event{Type: EventMute, Participant: p.id, Source: s, Muted: on || muted[s], Blocked: on, By: by})
	}
}

// getRole returns the participant's role, which SetRole may change.
func (p *participant) getRole() Role {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.role
}

func (p *participant) moderate(m clientMsg) error {
	if p.getRole() != Moderator {
		return fmt.Errorf("%w: only moderators may %s", ErrForbidden, m.Action)
	}
	target := p.room.get(m.Participant)
	if target == nil {
		return fmt.Errorf("%w: participant %q", ErrNotFound, m.Participant)
	}
	switch m.Action {
	case actionMute:
		target.block(false, true, p.id)
	case actionUnmute:
		target.block(false, false, p.id)
	case actionStopVideo:
		target.block(true, true, p.id)
	case actionAllowVideo:
		target.block(true, false, p.id)
	case actionRemove:
		target.remove("removed", p.id)
	default:
		return fmt.Errorf("unknown action %q", m.Action)
	}
	return nil
}

// remove tells the participant why and closes its WebSocket once that is
// written.
func (p *participant) remove(reason, by string) {
	p.reason.CompareAndSwap(nil, &reason)
	b, _ := json.Marshal(removedMsg{Type: msgRemoved, Reason: reason, By: by})
	select {
	case p.sendq <- outMsg{data: b, close: true}:
	default:
		p.kill(reason)
	}
	// Stop its media now rather than when the close handshake ends.
	p.mu.Lock()
	ups := make([]*upTrack, 0, len(p.ups))
	for _, up := range p.ups {
		ups = append(ups, up)
	}
	p.mu.Unlock()
	for _, up := range ups {
		p.unpublish(up)
	}
	// A client that ignores the close handshake is cut off.
	p.mu.Lock()
	if p.cutoff == nil && !p.closed {
		p.cutoff = time.AfterFunc(3*time.Second, func() { p.conn.CloseNow() })
	}
	p.mu.Unlock()
}

func (p *participant) setLayerPref(m clientMsg) {
	pref := layerPref{width: m.Width, height: m.Height, maxLayer: -1, paused: m.Paused}
	if m.MaxLayer != nil {
		pref.maxLayer = *m.MaxLayer
	}
	p.subMu.Lock()
	if _, ok := p.prefs[m.Track]; ok || len(p.prefs) < maxClientEntries {
		p.prefs[m.Track] = pref
	}
	var dt *downTrack
	for up, d := range p.downs {
		if up.key == m.Track {
			dt = d
		}
	}
	if dt != nil {
		dt.maxLayer.Store(int32(pref.layerFor(dt.up)))
	}
	p.subMu.Unlock()
	p.allocate()
}

// layerFor is the highest layer this preference wants, -1 for none.
func (pref layerPref) layerFor(up *upTrack) int {
	if pref.paused {
		return -1
	}
	l := maxLayers - 1
	if pref.width > 0 || pref.height > 0 {
		var sizes [maxLayers][2]int
		var present [maxLayers]bool
		for _, x := range up.layerList() {
			sizes[x.index] = [2]int{int(x.width.Load()), int(x.height.Load())}
			present[x.index] = true
		}
		l = layerForSize(pref.width, pref.height, sizes, present)
	}
	if pref.maxLayer >= 0 && pref.maxLayer < l {
		l = pref.maxLayer
	}
	return l
}

// bandwidth is the estimated bandwidth towards this subscriber.
func (p *participant) bandwidth() int {
	if o := p.bwOverride.Load(); o > 0 {
		return int(o)
	}
	if e := p.estimator.Load(); e != nil {
		if b := (*e).GetTargetBitrate(); b > 0 {
			return b
		}
	}
	return p.sfu.cfg.InitialBitrate
}

// orderDowns puts a subscriber's tracks in a stable order for allocate,
// which serves tracks of equal priority in the order given: the tracks
// that flow first, then by publisher (in order of joining) and source.
// Map order would make a short budget hop from one video to another at
// every allocation, each hop waiting for a keyframe, so that no video
// ever played.
func orderDowns(dts []*downTrack) {
	sort.SliceStable(dts, func(i, j int) bool {
		a, b := dts[i], dts[j]
		if fa, fb := a.cur.Load() >= 0, b.cur.Load() >= 0; fa != fb {
			return fa
		}
		if !a.up.owner.joinedAt.Equal(b.up.owner.joinedAt) {
			return a.up.owner.joinedAt.Before(b.up.owner.joinedAt)
		}
		if a.up.owner.id != b.up.owner.id {
			return a.up.owner.id < b.up.owner.id
		}
		return a.up.source < b.up.source
	})
}

// lossHold is how long after its last sign of packet loss a subscriber's
// budget is the plain estimate, without Config.LosslessBitrate.
const lossHold = 10 * time.Second

// budget is the bandwidth allocate shares out: the estimate, raised to
// Config.LosslessBitrate unless the subscriber lost packets lately.
func (p *participant) budget(now time.Time) int {
	b := p.bandwidth()
	floor := p.sfu.cfg.LosslessBitrate
	if floor <= 0 || b >= floor || p.bwOverride.Load() > 0 {
		return b
	}
	if e := p.estimator.Load(); e != nil && lossSeen((*e).GetStats()) {
		p.lossUntil.Store(now.Add(lossHold).UnixNano())
	}
	if now.UnixNano() < p.lossUntil.Load() {
		return b
	}
	return floor
}

// lossSeen reads pion's GCC statistics: more than 10% of packets lost,
// which is where GCC's loss-based controller itself starts to cut (it
// holds between 2% and 10%: loss that low is noise, not a full link).
func lossSeen(st map[string]any) bool {
	l, ok := st["averageLoss"].(float64)
	return ok && l > lossCongested
}

// lossCongested is the loss ratio that lifts the lossless floor.
const lossCongested = 0.10

// Nominal simulcast layer rates until a layer has been measured.
var nominalRates = [maxLayers]int{150_000, 500_000, 1_500_000}

// allocate sets the target layer of each video track this participant
// receives to fit its bandwidth (see allocate in alloc.go), asks for
// keyframes where it switches, and for a keyframe where packets were
// dropped for lack of queue space.
func (p *participant) allocate() {
	p.subMu.Lock()
	dts := make([]*downTrack, 0, len(p.downs))
	for _, dt := range p.downs {
		dts = append(dts, dt)
	}
	p.subMu.Unlock()
	orderDowns(dts)

	now := time.Now()
	budget := p.budget(now)
	speaker := p.room.speaker()
	var video []*downTrack
	var tracks []allocTrack
	for _, dt := range dts {
		if dt.dropped.Swap(0) > 0 {
			dt.requestKeyframe()
		}
		if dt.up.kind == webrtc.RTPCodecTypeAudio {
			for _, l := range dt.up.layerList() {
				budget -= int(l.bitrate.Load())
			}
			continue
		}
		t := allocTrack{
			screen:   dt.up.source == SourceScreen,
			speaker:  dt.up.owner.id == speaker,
			maxLayer: int(dt.maxLayer.Load()),
			current:  int(dt.cur.Load()),
		}
		for _, l := range dt.up.layerList() {
			r := int(l.bitrate.Load())
			if r == 0 && (now.Sub(l.created) < 2*time.Second || l.bytes.Load() > 0) {
				r = nominalRates[l.index] // not measured yet
			}
			t.rates[l.index] = r
		}
		video = append(video, dt)
		tracks = append(tracks, t)
	}
	targets := allocate(budget, tracks)
	p.probe(budget, tracks, targets, video)
	changed := false
	for i, dt := range video {
		if int32(targets[i]) != dt.target.Load() {
			changed = true
		}
	}
	if changed && p.sfu.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		var b strings.Builder
		for i, dt := range video {
			fmt.Fprintf(&b, "%s:%d->%d(cur %d, max %d, rates %v) ", dt.up.key, dt.target.Load(), targets[i], dt.cur.Load(), tracks[i].maxLayer, tracks[i].rates)
		}
		p.sfu.cfg.Logger.Debug("media: layers", "participant", p.id, "budget", budget, "estimate", p.bandwidth(), "tracks", b.String())
	}
	for i, dt := range video {
		tgt := int32(targets[i])
		dt.target.Store(tgt)
		if tgt >= 0 && dt.cur.Load() != tgt {
			dt.up.requestKeyframe(int8(tgt))
		}
	}
}

// Probing limits: the most padding sent to one subscriber, and how long
// to hold off after probing made the estimate fall.
const (
	maxProbeRate = 500_000
	probeBackoff = 10 * time.Second
)

// probe pads this subscriber's video towards the rate its next layer
// needs while the estimate is short of it. Pion's congestion controller
// never raises its estimate beyond 1.5 times what it sees sent, so a
// subscriber moved down to a small layer would otherwise stay there after
// the network recovers. If the estimate falls while probing, the link is
// full: stop and wait.
func (p *participant) probe(budget int, tracks []allocTrack, targets []int, video []*downTrack) {
	p.probeMu.Lock()
	defer p.probeMu.Unlock()
	if p.down == nil {
		return
	}
	now := time.Now()
	stop := func() {
		p.probing = false
		p.down.probeBytes.Store(0)
		p.down.probeDT.Store(nil)
	}
	if p.bwOverride.Load() > 0 || p.estimator.Load() == nil || now.Before(p.probeHold) {
		stop()
		return
	}
	need, i := probeNeed(budget, tracks, targets)
	if need <= 0 {
		stop()
		return
	}
	est := p.bandwidth()
	if p.probing && est < p.probeFrom*9/10 {
		p.probeHold = now.Add(probeBackoff)
		stop()
		return
	}
	if !p.probing || est > p.probeFrom {
		p.probing, p.probeFrom = true, est
	}
	// Pad on the constrained track if it flows, else on any that does.
	dt := video[i]
	if targets[i] < 0 || dt.cur.Load() < 0 {
		dt = nil
		for j, v := range video {
			if targets[j] >= 0 && v.cur.Load() >= 0 {
				dt = v
				break
			}
		}
	}
	if dt == nil {
		stop()
		return
	}
	rate := min(need*5/4, maxProbeRate)
	// Enough for the time until the next allocation.
	p.down.probeBytes.Store(int64(rate / 8 / 2))
	p.down.probeDT.Store(dt)
}

// teardown runs once, on the serving goroutine, after readLoop returned.
func (p *participant) teardown() string {
	reason := "closed"
	if r := p.reason.Load(); r != nil {
		reason = *r
	}
	p.mu.Lock()
	p.closed = true
	if p.cutoff != nil {
		p.cutoff.Stop()
	}
	ups := make([]*upTrack, 0, len(p.ups))
	for _, up := range p.ups {
		ups = append(ups, up)
	}
	pub := p.pub
	p.mu.Unlock()
	// From here on subscribe refuses, and the writer and pinger stop.
	p.cancel()

	for _, up := range ups {
		p.unpublish(up)
	}
	p.room.leave(p, reason)
	p.subMu.Lock()
	downs := p.downs
	p.downs = map[*upTrack]*downTrack{}
	sub := p.sub
	p.subMu.Unlock()
	for up, dt := range downs {
		up.removeDown(dt)
	}
	if p.down != nil {
		p.down.close()
	}
	if sub != nil {
		_ = sub.Close()
	}
	if pub != nil {
		_ = pub.Close()
	}
	p.conn.CloseNow()
	p.wg.Wait()
	return reason
}
