package meeting

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Room is the live side of a meeting as the media layer sees it: who is
// in it, with which role, and events as that changes. A Room is valid
// for as long as the meeting exists; the media layer gets one from
// Service.Room and checks each peer with Service.Authorize.
type Room interface {
	// ID is the meeting's id.
	ID() string
	// Meeting returns the current settings (Recording says whether the
	// meeting may be recorded).
	Meeting() Meeting
	// Participants returns the participants in the meeting (admitted
	// and connected), in the order they came in.
	Participants() []Participant
	// Subscribe delivers the room's events from now on: participants
	// joining, leaving, updated (role), muted, removed; settings; chat;
	// files; the meeting ending. Delivery never blocks the room: when
	// buffer events are waiting unread the subscription is dropped and
	// the channel closed, and the subscriber should read Participants
	// afresh and subscribe again. cancel ends the subscription and
	// closes the channel; it may be called more than once.
	Subscribe(buffer int) (events <-chan Event, cancel func())
}

// EventType names an event.
type EventType string

// Events. Each says which fields of Event it fills.
const (
	// EventWelcome (to one participant, first on its connection and
	// again when it enters the meeting): Participant is the receiver,
	// Participants who is in, Lobby who waits (for moderators), Meeting
	// the settings.
	EventWelcome EventType = "welcome"
	// EventState (to one participant): the receiver's state changed
	// (Participant), with Reason for denied and removed.
	EventState EventType = "state"
	// EventJoined: Participant entered the meeting.
	EventJoined EventType = "participant.joined"
	// EventLeft: Participant left (closed the page, lost the connection,
	// or was removed).
	EventLeft EventType = "participant.left"
	// EventUpdated: Participant's role changed.
	EventUpdated EventType = "participant.updated"
	// EventMuted: Participant was muted by a moderator (By), or unmuted
	// themselves; Participant.Muted tells which. The media layer stops
	// forwarding a muted participant's audio.
	EventMuted EventType = "participant.muted"
	// EventRemoved: a moderator (By) removed Participant. The media
	// layer drops their streams.
	EventRemoved EventType = "participant.removed"
	// EventLobby (to moderators): Lobby is who waits now.
	EventLobby EventType = "lobby"
	// EventSettings: Meeting holds the new settings.
	EventSettings EventType = "settings"
	// EventChat: Message was posted.
	EventChat EventType = "chat"
	// EventChatCleared: a moderator deleted the chat.
	EventChatCleared EventType = "chat.cleared"
	// EventFileAdded and EventFileDeleted: File was shared or deleted.
	EventFileAdded   EventType = "file.added"
	EventFileDeleted EventType = "file.deleted"
	// EventEnded: the meeting ended (deleted, archived, shutdown) with
	// Reason; connections close after it.
	EventEnded EventType = "ended"
)

// Event is something that happened in a room.
type Event struct {
	Type         EventType
	Participant  Participant
	Participants []Participant
	Lobby        []Participant
	Meeting      Meeting
	Message      Message
	File         File
	Reason       string
	// By is the participant ID of the moderator who acted.
	By string

	to  string // only to this participant ID
	aud audience
}

type audience uint8

const (
	audIn   audience = iota // participants in the meeting
	audAll                  // every connected participant, waiting ones too
	audMods                 // moderators in the meeting
)

// participant is a Participant with its secrets and connection.
type participant struct {
	Participant
	room     *room
	cred     string
	conn     *conn
	leftAt   time.Time // when the last connection ended (or the join)
	admitted bool      // passed the lobby once; stays in on reconnect
	gone     bool      // credential revoked
	baseRole Role      // role before moderator grants
}

// conn is one live connection of a participant (a WebSocket).
type conn struct {
	p      *participant
	ch     chan Event
	done   chan struct{} // closed when the room lets go of the connection
	reason string        // why, set before done is closed
}

type watcher struct {
	ch chan Event
}

// room is the live state of one meeting.
type room struct {
	s  *Service
	id string

	mu       sync.Mutex
	st       storage.Meeting
	started  bool
	parts    map[string]*participant
	order    []string // participant IDs in join order
	banned   map[string]bool
	watchers map[*watcher]bool
	ended    bool

	drops    []*conn
	emitting bool
	after    []func()

	chatMu sync.Mutex // orders chat appends with their events
}

func (r *room) lock() { r.mu.Lock() }

// unlock releases the room and then runs what was deferred to outside
// the lock (store writes).
func (r *room) unlock() {
	after := r.after
	r.after = nil
	r.mu.Unlock()
	for _, f := range after {
		f()
	}
}

// getRoom returns the live room of st, creating it.
func (s *Service) getRoom(st storage.Meeting) (*room, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	r := s.rooms[st.ID]
	if r == nil {
		r = &room{
			s: s, id: st.ID, st: st,
			parts:    make(map[string]*participant),
			banned:   make(map[string]bool),
			watchers: make(map[*watcher]bool),
		}
		s.rooms[st.ID] = r
	}
	s.mu.Unlock()
	r.lock()
	r.applyLocked(st)
	r.unlock()
	return r, nil
}

// Room returns the live room of a meeting, for the media layer.
func (s *Service) Room(ctx context.Context, meetingID string) (Room, error) {
	st, err := s.load(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	if st.Archived {
		return nil, ErrArchived
	}
	return s.getRoom(st)
}

// ID is the meeting's id.
func (r *room) ID() string { return r.id }

// Meeting returns the current settings.
func (r *room) Meeting() Meeting {
	r.lock()
	defer r.unlock()
	return r.s.fromStored(r.st)
}

// Participants returns who is in the meeting.
func (r *room) Participants() []Participant {
	r.lock()
	defer r.unlock()
	return r.inLocked()
}

// Subscribe delivers the room's events; see Room.
func (r *room) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer <= 0 {
		buffer = r.s.cfg.QueueLength
	}
	w := &watcher{ch: make(chan Event, buffer)}
	r.lock()
	if r.ended {
		close(w.ch)
	} else {
		r.watchers[w] = true
	}
	r.unlock()
	return w.ch, func() {
		r.lock()
		if r.watchers[w] {
			delete(r.watchers, w)
			close(w.ch)
		}
		r.unlock()
	}
}

func (r *room) inLocked() []Participant {
	var out []Participant
	for _, id := range r.order {
		if p := r.parts[id]; p != nil && p.Present && p.State == In {
			out = append(out, p.Participant)
		}
	}
	return out
}

func (r *room) lobbyLocked() []Participant {
	var out []Participant
	for _, id := range r.order {
		if p := r.parts[id]; p != nil && p.Present && p.State == Lobby {
			out = append(out, p.Participant)
		}
	}
	return out
}

// welcomeLocked is the snapshot a participant gets when it connects or
// enters.
func (r *room) welcomeLocked(p *participant) Event {
	ev := Event{Type: EventWelcome, Participant: p.Participant, Meeting: r.s.fromStored(r.st), to: p.ID}
	if p.State == In {
		ev.Participants = r.inLocked()
		if p.Role >= RoleModerator {
			ev.Lobby = r.lobbyLocked()
		}
	}
	return ev
}

// emitLocked delivers ev to its audience without blocking: a connection
// whose queue is full is dropped, a watcher whose channel is full is
// closed.
func (r *room) emitLocked(ev Event) {
	for _, id := range r.order {
		p := r.parts[id]
		if p == nil || p.conn == nil || !wants(p, ev) {
			continue
		}
		select {
		case p.conn.ch <- ev:
		default:
			r.drops = append(r.drops, p.conn)
		}
	}
	if ev.to == "" {
		for w := range r.watchers {
			select {
			case w.ch <- ev:
			default:
				delete(r.watchers, w)
				close(w.ch)
			}
		}
	}
	if r.emitting {
		return
	}
	r.emitting = true
	for len(r.drops) > 0 {
		c := r.drops[0]
		r.drops = r.drops[1:]
		r.detachLocked(c, "too slow: events were not read in time")
	}
	r.emitting = false
}

func wants(p *participant, ev Event) bool {
	if ev.to != "" {
		return p.ID == ev.to
	}
	switch ev.aud {
	case audAll:
		return true
	case audMods:
		return p.State == In && p.Role >= RoleModerator
	}
	return p.State == In
}

// detachLocked ends connection c: the participant is no longer present
// (unless a newer connection replaced c).
func (r *room) detachLocked(c *conn, reason string) {
	select {
	case <-c.done:
		return
	default:
	}
	c.reason = reason
	close(c.done)
	p := c.p
	if p.conn != c {
		return
	}
	p.conn = nil
	p.Present = false
	p.leftAt = r.s.now()
	switch p.State {
	case In:
		r.emitLocked(Event{Type: EventLeft, Participant: p.Participant})
		r.checkStartedLocked()
	case Lobby:
		r.emitLocked(Event{Type: EventLobby, Lobby: r.lobbyLocked(), aud: audMods})
	}
}

// checkStartedLocked ends the meeting's "started" state when nobody is
// in it any more, so that the next attendees wait for the organizer
// again if they must.
func (r *room) checkStartedLocked() {
	for _, p := range r.parts {
		if p.Present && p.State == In {
			return
		}
	}
	r.started = false
}

// placeLocked is where p belongs now.
func (r *room) placeLocked(p *participant) State {
	switch {
	case p.Role == RoleOrganizer:
		return In
	case !r.started && !r.st.AttendeesCanStart:
		return Waiting
	case r.st.Lobby && p.Role < RoleModerator && !p.admitted:
		return Lobby
	}
	return In
}

// setStateLocked moves p to st and tells whom it concerns.
func (r *room) setStateLocked(p *participant, st State) {
	old := p.State
	if old == st {
		return
	}
	p.State = st
	if st == In {
		p.admitted = true
	}
	if !p.Present {
		return
	}
	if st == In {
		r.started = true
		if !p.User.IsZero() {
			user, id := p.User.Address(), r.id
			r.after = append(r.after, func() { r.s.recordParticipation(context.Background(), user, id, false) })
		}
		r.emitLocked(r.welcomeLocked(p))
		r.emitLocked(Event{Type: EventJoined, Participant: p.Participant})
	} else {
		r.emitLocked(Event{Type: EventState, Participant: p.Participant, to: p.ID})
	}
	if old == In {
		r.emitLocked(Event{Type: EventLeft, Participant: p.Participant})
		r.checkStartedLocked()
	}
	if old == Lobby || st == Lobby {
		r.emitLocked(Event{Type: EventLobby, Lobby: r.lobbyLocked(), aud: audMods})
	}
}

// settleLocked moves waiting participants on as far as the room allows:
// when one enters and starts the meeting, others may follow.
func (r *room) settleLocked() {
	for changed := true; changed; {
		changed = false
		for _, id := range r.order {
			p := r.parts[id]
			if p == nil || !p.Present || p.gone || (p.State != Waiting && p.State != Lobby) {
				continue
			}
			if st := r.placeLocked(p); st != p.State {
				r.setStateLocked(p, st)
				changed = true
			}
		}
	}
}

// removeLocked takes p out for good (its credential stops working) with
// final state st (Denied or Removed).
func (r *room) removeLocked(p *participant, st State, reason, by string) {
	if p.gone {
		return
	}
	old, wasPresent := p.State, p.Present
	p.State = st
	p.gone = true
	if c := p.conn; c != nil {
		// Straight into the queue, then let go: the writer drains the
		// queue before it closes, so the participant learns why.
		select {
		case c.ch <- Event{Type: EventState, Participant: p.Participant, Reason: reason, to: p.ID}:
		default:
		}
		p.conn = nil
		p.Present = false
		c.reason = reason
		close(c.done)
	}
	if wasPresent && old == In {
		if st == Removed && by != "" {
			r.emitLocked(Event{Type: EventRemoved, Participant: p.Participant, By: by, Reason: reason})
		}
		r.emitLocked(Event{Type: EventLeft, Participant: p.Participant, Reason: reason})
		r.checkStartedLocked()
	}
	if wasPresent && old == Lobby {
		r.emitLocked(Event{Type: EventLobby, Lobby: r.lobbyLocked(), aud: audMods})
	}
}

// roleLocked is p's role under the current settings.
func (r *room) roleLocked(p *participant) Role {
	if p.baseRole == RoleOrganizer {
		return RoleOrganizer
	}
	if slices.Contains(r.st.Moderators, p.Identity) {
		return RoleModerator
	}
	return p.baseRole
}

// applyLocked takes a new version of the meeting's settings into the live
// room, with immediate effect for everyone in it.
func (r *room) applyLocked(st storage.Meeting) {
	if st.Version < r.st.Version || r.ended {
		return
	}
	changed := st.Version != r.st.Version
	r.st = st
	if !changed {
		return
	}
	if st.Archived {
		r.endLocked("the meeting has ended and is archived")
		return
	}
	for _, id := range r.order {
		p := r.parts[id]
		if p == nil || p.gone {
			continue
		}
		if p.User.IsZero() && !st.AllowGuests {
			r.removeLocked(p, Removed, "the meeting no longer allows guests", "")
			continue
		}
		if role := r.roleLocked(p); role != p.Role {
			p.Role = role
			if p.Present && p.State == In {
				r.emitLocked(Event{Type: EventUpdated, Participant: p.Participant})
				if role >= RoleModerator {
					// A new moderator needs the lobby it now manages.
					r.emitLocked(r.welcomeLocked(p))
				}
			}
		}
	}
	r.emitLocked(Event{Type: EventSettings, Meeting: r.s.fromStored(st), aud: audAll})
	r.settleLocked()
}

// endLocked closes the room: everyone is told and disconnected, every
// credential stops working.
func (r *room) endLocked(reason string) {
	if r.ended {
		return
	}
	r.emitLocked(Event{Type: EventEnded, Reason: reason, aud: audAll})
	r.ended = true
	for _, p := range r.parts {
		p.gone = true
		if c := p.conn; c != nil {
			p.conn = nil
			p.Present = false
			c.reason = reason
			close(c.done)
		}
	}
	for w := range r.watchers {
		delete(r.watchers, w)
		close(w.ch)
	}
}

// --- joining ---

// JoinRequest is what someone opening a meeting link gives.
type JoinRequest struct {
	// User is the logged-in user; zero for a guest.
	User jid.JID
	// GuestID is a guest's identity from an earlier join (the guest
	// cookie); empty gives a new one.
	GuestID string
	// Name is the name shown to others: required for guests; a user's
	// defaults to the local part of their address.
	Name string
	// Password is the meeting password, if it has one.
	Password string
	// ClientAddr is the client's address, for throttling wrong passwords.
	ClientAddr string
}

// Ticket is a successful join.
type Ticket struct {
	// Credential is the participant's secret: the WebSocket, the HTTP
	// API and the media layer (Authorize) take it. It lasts while the
	// participant is connected and Config.RejoinGrace after.
	Credential  string
	Participant Participant
	// GuestID is the guest's identity, to keep in the guest cookie.
	GuestID string
}

const maxName = 64

// Join lets someone in by a meeting's link token. The organizer is in at
// once; others need the password if there is one, may need to wait for
// the organizer (AttendeesCanStart off) and then in the lobby (Lobby on)
// until a moderator admits them. Wrong passwords are throttled per
// meeting and per client address (ErrThrottled).
//
// The participant is present only once it connects (the WebSocket);
// Ticket.Participant.State is where it will be.
func (s *Service) Join(ctx context.Context, token string, req JoinRequest) (Ticket, error) {
	st, err := s.loadToken(ctx, token)
	if err != nil {
		return Ticket{}, err
	}
	if st.Archived {
		return Ticket{}, ErrArchived
	}
	name := strings.TrimSpace(req.Name)
	if utf8.RuneCountInString(name) > maxName {
		return Ticket{}, fmt.Errorf("%w: the name is longer than %d characters", ErrBadRequest, maxName)
	}
	p := &participant{Participant: Participant{ID: newToken(9), MeetingID: st.ID, Name: name, Joined: s.now()}}
	switch {
	case !req.User.IsZero():
		p.User = req.User.Bare()
		p.Identity = "u:" + p.User.Address()
		p.baseRole = RoleAttendee
		if p.User.Address() == st.Organizer {
			p.baseRole = RoleOrganizer
		}
		if p.Name == "" && s.cfg.DisplayName != nil {
			p.Name = strings.TrimSpace(s.cfg.DisplayName(ctx, p.User))
		}
		if p.Name == "" {
			p.Name = p.User.Local()
		}
	case !st.AllowGuests:
		return Ticket{}, ErrLoginRequired
	case name == "":
		return Ticket{}, ErrNameRequired
	default:
		id := req.GuestID
		if id == "" || len(id) > 64 {
			id = newToken(12)
		}
		p.Identity = "g:" + id
		p.baseRole = RoleGuest
	}
	if st.PasswordHash != "" && p.baseRole != RoleOrganizer {
		now := s.now()
		addrKey := req.ClientAddr
		wait := max(s.pwMeeting.blocked(st.ID, now), s.pwAddr.blocked(addrKey, now))
		if wait > 0 {
			return Ticket{}, &throttledError{wait}
		}
		if !checkPassword(st.PasswordHash, req.Password) {
			s.pwMeeting.fail(st.ID, now)
			s.pwAddr.fail(addrKey, now)
			return Ticket{}, ErrWrongPassword
		}
	}
	r, err := s.getRoom(st)
	if err != nil {
		return Ticket{}, err
	}
	p.room = r
	p.cred = newToken(credentialBytes)
	p.leftAt = s.now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Ticket{}, ErrClosed
	}
	r.lock()
	if r.ended {
		r.unlock()
		s.mu.Unlock()
		return Ticket{}, ErrNotFound
	}
	if r.banned[p.Identity] {
		r.unlock()
		s.mu.Unlock()
		return Ticket{}, fmt.Errorf("%w: a moderator removed you from this meeting", ErrNotAllowed)
	}
	s.pruneLocked(r)
	p.Role = r.roleLocked(p)
	p.State = r.placeLocked(p)
	r.parts[p.ID] = p
	r.order = append(r.order, p.ID)
	s.creds[p.cred] = p
	t := Ticket{Credential: p.cred, Participant: p.Participant}
	if p.User.IsZero() {
		t.GuestID = strings.TrimPrefix(p.Identity, "g:")
	}
	r.unlock()
	s.mu.Unlock()
	return t, nil
}

// pruneLocked forgets participants whose credential expired. Callers
// hold s.mu and r.mu.
func (s *Service) pruneLocked(r *room) {
	now := s.now()
	kept := r.order[:0]
	for _, id := range r.order {
		p := r.parts[id]
		if p.gone || (!p.Present && now.Sub(p.leftAt) > s.cfg.RejoinGrace) {
			p.gone = true
			delete(r.parts, id)
			delete(s.creds, p.cred)
			continue
		}
		kept = append(kept, id)
	}
	clear(r.order[len(kept):])
	r.order = kept
}

// pruneRooms forgets expired participants everywhere, and rooms left
// with no participant and no subscriber.
func (s *Service) pruneRooms() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.rooms {
		r.lock()
		s.pruneLocked(r)
		if r.ended || (len(r.parts) == 0 && len(r.watchers) == 0) {
			delete(s.rooms, id)
		}
		r.unlock()
	}
}

// participant finds the live participant of a credential and locks its
// room; the caller unlocks it.
func (s *Service) participant(cred string) (*room, *participant, error) {
	s.mu.Lock()
	p := s.creds[cred]
	if p != nil && p.gone {
		delete(s.creds, cred)
		p = nil
	}
	s.mu.Unlock()
	if p == nil || cred == "" {
		return nil, nil, ErrBadCredential
	}
	r := p.room
	r.lock()
	if p.gone || (!p.Present && s.now().Sub(p.leftAt) > s.cfg.RejoinGrace) {
		p.gone = true
		r.unlock()
		return nil, nil, ErrBadCredential
	}
	return r, p, nil
}

// Authorize returns the participant a credential belongs to, if it is in
// the meeting: the media layer calls it before it accepts a peer. A
// participant waiting for the organizer or in the lobby gives
// ErrNotAdmitted; an unknown, expired or revoked credential
// ErrBadCredential.
func (s *Service) Authorize(ctx context.Context, credential string) (Participant, error) {
	r, p, err := s.participant(credential)
	if err != nil {
		return Participant{}, err
	}
	defer r.unlock()
	if p.State != In {
		return p.Participant, ErrNotAdmitted
	}
	return p.Participant, nil
}

// connect attaches a new connection to the participant of cred, making
// it present. A previous connection of the same participant is closed
// ("replaced"). The connection's first event is the welcome.
func (s *Service) connect(cred string) (*conn, error) {
	r, p, err := s.participant(cred)
	if err != nil {
		return nil, err
	}
	defer r.unlock()
	if old := p.conn; old != nil {
		r.detachLocked(old, "replaced by a newer connection")
	}
	c := &conn{p: p, ch: make(chan Event, s.cfg.QueueLength), done: make(chan struct{})}
	p.conn = c
	p.Present = true
	st := r.placeLocked(p)
	if p.State == In && st != In {
		// Back after the meeting emptied: wait like everyone else.
		p.State = st
	} else if p.State != In {
		p.State = st
	}
	c.ch <- r.welcomeLocked(p)
	switch p.State {
	case In:
		r.started = true
		if !p.User.IsZero() {
			user, id := p.User.Address(), r.id
			r.after = append(r.after, func() { s.recordParticipation(context.Background(), user, id, false) })
		}
		r.emitLocked(Event{Type: EventJoined, Participant: p.Participant})
		r.settleLocked()
	case Lobby:
		r.emitLocked(Event{Type: EventLobby, Lobby: r.lobbyLocked(), aud: audMods})
	}
	return c, nil
}

// disconnect ends c when its connection closes.
func (s *Service) disconnect(c *conn) {
	r := c.p.room
	r.lock()
	r.detachLocked(c, "closed")
	r.unlock()
}

// Leave ends a participation: the credential stops working.
func (s *Service) Leave(ctx context.Context, credential string) error {
	r, p, err := s.participant(credential)
	if err != nil {
		return err
	}
	defer r.unlock()
	r.removeLocked(p, Removed, "left", "")
	return nil
}

// --- moderation ---

// moderate runs fn for a moderator (or the organizer) in the meeting on
// the target participant.
func (s *Service) moderate(cred, target string, fn func(r *room, p, t *participant) error) error {
	r, p, err := s.participant(cred)
	if err != nil {
		return err
	}
	defer r.unlock()
	if p.State != In {
		return ErrNotAdmitted
	}
	if p.Role < RoleModerator {
		return fmt.Errorf("%w: only moderators do this", ErrNotAllowed)
	}
	t := r.parts[target]
	if t == nil || t.gone {
		return fmt.Errorf("%w: no participant %q", ErrBadRequest, target)
	}
	return fn(r, p, t)
}

// Admit lets a participant waiting in the lobby in. The caller
// (credential) must be a moderator or the organizer.
func (s *Service) Admit(ctx context.Context, credential, participantID string) error {
	return s.moderate(credential, participantID, func(r *room, p, t *participant) error {
		if t.State != Lobby {
			return fmt.Errorf("%w: %s is not waiting in the lobby", ErrBadRequest, t.Name)
		}
		t.admitted = true
		r.setStateLocked(t, r.placeLocked(t))
		r.settleLocked()
		return nil
	})
}

// Deny turns a participant waiting in the lobby away; their credential
// stops working. Moderators only.
func (s *Service) Deny(ctx context.Context, credential, participantID string) error {
	return s.moderate(credential, participantID, func(r *room, p, t *participant) error {
		if t.State != Lobby && t.State != Waiting {
			return fmt.Errorf("%w: %s is not waiting", ErrBadRequest, t.Name)
		}
		r.removeLocked(t, Denied, "a moderator denied you entry", p.ID)
		return nil
	})
}

// Remove takes a participant out of the meeting; they cannot come back
// while the meeting lasts (until everyone has left). Moderators only;
// nobody removes the organizer.
func (s *Service) Remove(ctx context.Context, credential, participantID string) error {
	return s.moderate(credential, participantID, func(r *room, p, t *participant) error {
		if t.Role == RoleOrganizer || t == p {
			return fmt.Errorf("%w: the organizer cannot be removed, nor yourself (leave instead)", ErrNotAllowed)
		}
		r.banned[t.Identity] = true
		r.removeLocked(t, Removed, "a moderator removed you from the meeting", p.ID)
		return nil
	})
}

// Mute mutes a participant: the media layer stops forwarding their
// audio until they unmute themselves. Moderators only, and only the
// organizer mutes the organizer.
func (s *Service) Mute(ctx context.Context, credential, participantID string) error {
	return s.moderate(credential, participantID, func(r *room, p, t *participant) error {
		if t.State != In {
			return fmt.Errorf("%w: %s is not in the meeting", ErrBadRequest, t.Name)
		}
		if t.Role == RoleOrganizer && p.Role != RoleOrganizer {
			return fmt.Errorf("%w: only the organizer mutes the organizer", ErrNotAllowed)
		}
		if !t.Muted {
			t.Muted = true
			r.emitLocked(Event{Type: EventMuted, Participant: t.Participant, By: p.ID})
		}
		return nil
	})
}

// Unmute lets a participant speak again; only they can, for themselves.
func (s *Service) Unmute(ctx context.Context, credential string) error {
	r, p, err := s.participant(credential)
	if err != nil {
		return err
	}
	defer r.unlock()
	if p.Muted {
		p.Muted = false
		r.emitLocked(Event{Type: EventMuted, Participant: p.Participant, By: p.ID})
	}
	return nil
}

// SetModerator grants (on) or takes back moderator rights. Moderators
// and the organizer may; the organizer's role never changes. Rights
// granted are kept with the meeting: the same user or guest (by guest
// cookie) is a moderator again next time.
func (s *Service) SetModerator(ctx context.Context, credential, participantID string, on bool) error {
	var meetingID, identity string
	err := s.moderate(credential, participantID, func(r *room, p, t *participant) error {
		if t.Role == RoleOrganizer {
			return fmt.Errorf("%w: the organizer's role does not change", ErrNotAllowed)
		}
		meetingID, identity = r.id, t.Identity
		return nil
	})
	if err != nil {
		return err
	}
	_, err = s.modify(ctx, meetingID, func(st *storage.Meeting) error {
		has := slices.Contains(st.Moderators, identity)
		switch {
		case on && !has:
			st.Moderators = append(st.Moderators, identity)
		case !on && has:
			st.Moderators = slices.DeleteFunc(st.Moderators, func(m string) bool { return m == identity })
		}
		return nil
	})
	return err
}
