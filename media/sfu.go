package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Errors returned by SFU methods and reported to clients (with the codes
// listed in SIGNALLING.md).
var (
	ErrClosed               = errors.New("media: SFU closed")
	ErrNotFound             = errors.New("media: not found")
	ErrForbidden            = errors.New("media: forbidden")
	ErrRoomFull             = errors.New("media: room full")
	ErrPublisherLimit       = errors.New("media: publisher limit reached")
	ErrRecordingUnavailable = errors.New("media: recording unavailable")
)

// SFU is a selective forwarding unit: it receives each participant's
// audio and video once and forwards it to everyone else in their room,
// choosing per receiver among simulcast layers. Create one with New, serve
// Handler for signalling, and Close it when done. Several SFUs may run in
// one process; they share nothing.
//
// All methods are safe for concurrent use.
type SFU struct {
	cfg    Config
	eng    *engine
	events *dispatcher
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	rooms  map[string]*room
	conns  sync.WaitGroup
}

// New validates cfg, opens the media sockets it names and returns a running
// SFU.
func New(cfg Config) (*SFU, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	eng, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &SFU{
		cfg:    cfg,
		eng:    eng,
		events: newDispatcher(cfg.OnEvent),
		ctx:    ctx,
		cancel: cancel,
		rooms:  map[string]*room{},
	}, nil
}

// UDPAddr is the address of the shared ICE UDP port, or nil when the SFU
// uses a port range.
func (s *SFU) UDPAddr() net.Addr { return s.eng.udpAddr }

// TCPAddr is the address of the ICE-TCP port, or nil when ICE-TCP is off.
func (s *SFU) TCPAddr() net.Addr { return s.eng.tcpAddr }

// Handler serves the signalling WebSocket (see SIGNALLING.md). Mount it
// wherever the meeting pages expect it; each request becomes one
// participant for as long as its WebSocket lives.
func (s *SFU) Handler() http.Handler { return http.HandlerFunc(s.serveWS) }

func (s *SFU) serveWS(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.conns.Add(1)
	s.mu.Unlock()
	defer s.conns.Done()

	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		return
	}
	conn.SetReadLimit(1 << 20)
	defer conn.CloseNow()

	g, err := s.handshake(conn)
	if err != nil {
		return
	}
	p := newParticipant(s, conn, g)
	if err := p.start(); err != nil {
		s.cfg.Logger.Error("media: start participant", "err", err)
		writeJSON(conn, errorMsg{Type: msgError, Code: codeInternal, Request: msgJoin})
		p.cancel()
		p.teardownUnjoined()
		return
	}
	tracks, old, err := s.join(p, g)
	if err != nil {
		code := codeInternal
		switch {
		case errors.Is(err, ErrRoomFull):
			code = codeRoomFull
		case errors.Is(err, ErrClosed):
			code = "shutdown"
		}
		writeJSON(conn, errorMsg{Type: msgError, Code: code, Message: err.Error(), Request: msgJoin})
		conn.Close(websocket.StatusPolicyViolation, code)
		p.cancel()
		p.teardownUnjoined()
		return
	}
	if old != nil {
		old.remove("replaced", "")
	}
	role := p.getRole()
	p.room.emit(Event{Type: EventJoined, Participant: p.id, Name: p.name, Role: &role})
	p.subscribe(tracks...)
	p.readLoop()
	reason := p.teardown()
	s.cfg.Logger.Debug("media: participant left", "room", p.room.id, "participant", p.id, "reason", reason)
}

// handshake reads the join message and authorises it.
func (s *SFU) handshake(conn *websocket.Conn) (Grant, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.JoinTimeout)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		return Grant{}, err
	}
	var m clientMsg
	if err := json.Unmarshal(b, &m); err != nil || m.Type != msgJoin {
		writeJSON(conn, errorMsg{Type: msgError, Code: codeBadRequest, Message: "the first message must be a join"})
		conn.Close(websocket.StatusPolicyViolation, "join first")
		return Grant{}, errors.New("no join")
	}
	g, err := s.cfg.Authorizer.Authorize(ctx, m.Credential)
	if err == nil && (g.Room == "" || g.Participant == "") {
		err = errors.New("grant without room or participant")
	}
	if err != nil {
		s.cfg.Logger.Info("media: join refused", "err", err)
		writeJSON(conn, errorMsg{Type: msgError, Code: codeUnauthorized, Request: msgJoin})
		conn.Close(websocket.StatusPolicyViolation, "unauthorized")
		return Grant{}, err
	}
	return g, nil
}

func writeJSON(conn *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Write(ctx, websocket.MessageText, b)
}

// join admits p to its room and queues its joined message; it returns the
// tracks p should subscribe to and the session p replaces, if any.
func (s *SFU) join(p *participant, g Grant) ([]*upTrack, *participant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	r := s.rooms[g.Room]
	created := r == nil
	if created {
		r = newRoom(s, g.Room)
		s.rooms[g.Room] = r
	}
	r.mu.Lock()
	r.limits = g.Limits.withDefaults(s.cfg.Limits)
	old := r.parts[p.id]
	if old == nil && len(r.parts) >= r.limits.MaxParticipants {
		empty := len(r.parts) == 0
		r.mu.Unlock()
		if empty {
			delete(s.rooms, g.Room)
			go r.close()
		}
		return nil, nil, fmt.Errorf("%w: %d participants", ErrRoomFull, r.limits.MaxParticipants)
	}
	if old != nil {
		delete(r.publishers, old)
	}
	r.parts[p.id] = p
	p.room = r
	tracks := make([]*upTrack, 0, len(r.tracks))
	for t := range r.tracks {
		tracks = append(tracks, t)
	}
	p.send(joinedMsg{
		Type: msgJoined, Room: r.id, Participant: p.id, Name: p.name, Role: p.getRole(),
		ICEServers:   iceServersFor(s.cfg.ICEServers, p.id, time.Now(), s.cfg.TURNCredentialTTL),
		Participants: r.infoLocked(),
		Recording:    r.rec != nil,
		Speaker:      r.speakerID,
		Limits:       r.limits,
	})
	r.mu.Unlock()
	return tracks, old, nil
}

// teardownUnjoined undoes start for a participant that never joined.
func (p *participant) teardownUnjoined() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	if p.down != nil {
		p.down.close()
	}
	p.subMu.Lock()
	sub := p.sub
	p.subMu.Unlock()
	if sub != nil {
		_ = sub.Close()
	}
	p.conn.CloseNow()
	p.wg.Wait()
}

// Close disconnects everyone, stops recordings, and closes the media
// sockets. It waits for the SFU's goroutines to finish.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var ps []*participant
	for _, r := range s.rooms {
		ps = append(ps, r.members()...)
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.remove("shutdown", "")
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// Clients that ignore the close handshake: cut them off.
		s.cancel()
		for _, p := range ps {
			p.conn.CloseNow()
		}
		<-done
	}
	s.cancel()
	err := s.eng.close()
	s.events.close()
	return err
}

func (s *SFU) room(id string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[id]
}

func (s *SFU) participant(roomID, id string) (*participant, error) {
	r := s.room(roomID)
	if r == nil {
		return nil, fmt.Errorf("%w: room %q", ErrNotFound, roomID)
	}
	p := r.get(id)
	if p == nil {
		return nil, fmt.Errorf("%w: participant %q in room %q", ErrNotFound, id, roomID)
	}
	return p, nil
}

// Rooms lists the rooms with someone in them.
func (s *SFU) Rooms() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.rooms))
	for id := range s.rooms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Participants lists who is in a room, in order of joining.
func (s *SFU) Participants(roomID string) ([]ParticipantInfo, error) {
	r := s.room(roomID)
	if r == nil {
		return nil, fmt.Errorf("%w: room %q", ErrNotFound, roomID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.infoLocked(), nil
}

// Mute is a moderator action from the host: it stops (muted) or allows
// again the forwarding of a participant's mic, whatever the participant
// does. Unmuting only lifts the block; the participant unmutes themselves.
func (s *SFU) Mute(roomID, participantID string, muted bool) error {
	p, err := s.participant(roomID, participantID)
	if err != nil {
		return err
	}
	p.block(false, muted, "")
	return nil
}

// SetRole changes a joined participant's role (a meeting made them a
// moderator, say) without a new join; everyone in the room gets a role
// event.
func (s *SFU) SetRole(roomID, participantID string, role Role) error {
	p, err := s.participant(roomID, participantID)
	if err != nil {
		return err
	}
	p.mu.Lock()
	changed := p.role != role
	p.role = role
	p.mu.Unlock()
	if changed {
		p.room.emit(Event{Type: EventRole, Participant: p.id, Role: &role})
	}
	return nil
}

// StopVideo is Mute for a participant's camera and screen share.
func (s *SFU) StopVideo(roomID, participantID string, stopped bool) error {
	p, err := s.participant(roomID, participantID)
	if err != nil {
		return err
	}
	p.block(true, stopped, "")
	return nil
}

// Remove disconnects a participant, telling them reason.
func (s *SFU) Remove(roomID, participantID, reason string) error {
	p, err := s.participant(roomID, participantID)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "removed"
	}
	p.remove(reason, "")
	return nil
}

// SetRecording starts or stops recording a room. Starting needs
// Config.Recording and a room whose Limits allow recording.
func (s *SFU) SetRecording(roomID string, on bool) error {
	r := s.room(roomID)
	if r == nil {
		return fmt.Errorf("%w: room %q", ErrNotFound, roomID)
	}
	return r.setRecording(on, "")
}

// Recording reports whether a room is being recorded.
func (s *SFU) Recording(roomID string) bool {
	r := s.room(roomID)
	return r != nil && r.recording()
}
