// Package muc holds the rules of multi-user chat rooms (XEP-0045) apart
// from the wire: who may enter a room and as what, roles and affiliations
// and who may change them, room configuration, discussion history, the
// subject, invitations and the room archive. It knows nothing of XML: a
// front end (xmppsrv's MUC component) turns stanzas into calls on a
// Service and renders what rooms send, which reaches it through the Wire
// interface, in the order clients must see it.
//
// Rooms live at bare JIDs (team@conference.example.com), occupants at
// occupant JIDs (team@conference.example.com/Nick). Persistent rooms are
// kept in a storage.Rooms and survive a restart; their messages go to a
// storage.Archive with the room's JID as the owner.
//
//	svc := muc.New(muc.Config{Store: st, Archive: st, NewID: chatSvc.NewID}, wire)
//	err := svc.Enter(ctx, muc.Entry{Room: room, Nick: "alice", From: full, MUC: true})
package muc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Affiliation is a user's lasting association with a room (XEP-0045
// section 5.2). The values are stored (storage.RoomAffiliation) and do not
// change.
type Affiliation uint8

const (
	AffiliationNone Affiliation = 0
	Outcast         Affiliation = 1
	Member          Affiliation = 2
	Admin           Affiliation = 3
	Owner           Affiliation = 4
)

var affNames = [...]string{"none", "outcast", "member", "admin", "owner"}

func (a Affiliation) String() string {
	if int(a) < len(affNames) {
		return affNames[a]
	}
	return "none"
}

// ParseAffiliation reads an affiliation's name.
func ParseAffiliation(s string) (Affiliation, bool) {
	for i, n := range affNames {
		if n == s {
			return Affiliation(i), true
		}
	}
	return 0, false
}

// rank orders affiliations: outcast below none.
func (a Affiliation) rank() int {
	if a == Outcast {
		return -1
	}
	return int(a)
}

// Role is an occupant's position for the length of a visit (XEP-0045
// section 5.1).
type Role uint8

const (
	RoleNone    Role = 0
	Visitor     Role = 1
	Participant Role = 2
	Moderator   Role = 3
)

var roleNames = [...]string{"none", "visitor", "participant", "moderator"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "none"
}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, bool) {
	for i, n := range roleNames {
		if n == s {
			return Role(i), true
		}
	}
	return 0, false
}

// Roles is a set of roles (presence broadcast, member list access).
type Roles uint8

// AllRoles holds visitor, participant and moderator.
const AllRoles = Roles(1<<Visitor | 1<<Participant | 1<<Moderator)

// Has reports whether r is in the set.
func (s Roles) Has(r Role) bool { return s&(1<<r) != 0 }

// With returns the set with r added.
func (s Roles) With(r Role) Roles { return s | 1<<r }

// List returns the roles of the set, lowest first.
func (s Roles) List() []Role {
	var out []Role
	for _, r := range []Role{Visitor, Participant, Moderator} {
		if s.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

// WhoIs says who sees occupants' real JIDs (muc#roomconfig_whois).
type WhoIs uint8

const (
	// WhoIsModerators: a semi-anonymous room.
	WhoIsModerators WhoIs = 0
	// WhoIsAnyone: a non-anonymous room.
	WhoIsAnyone WhoIs = 1
)

func (w WhoIs) String() string {
	if w == WhoIsAnyone {
		return "anyone"
	}
	return "moderators"
}

// PMPolicy says who may send private messages (muc#roomconfig_allowpm).
type PMPolicy uint8

const (
	PMAnyone       PMPolicy = 0
	PMParticipants PMPolicy = 1
	PMModerators   PMPolicy = 2
	PMNobody       PMPolicy = 3
)

var pmNames = [...]string{"anyone", "participants", "moderators", "none"}

func (p PMPolicy) String() string {
	if int(p) < len(pmNames) {
		return pmNames[p]
	}
	return "anyone"
}

// ParsePMPolicy reads a muc#roomconfig_allowpm value.
func ParsePMPolicy(s string) (PMPolicy, bool) {
	for i, n := range pmNames {
		if n == s {
			return PMPolicy(i), true
		}
	}
	return 0, false
}

// RoomConfig is a room's configuration (the muc#roomconfig form).
type RoomConfig struct {
	// Name is the natural-language name; Description a short text;
	// Language the language of discussion.
	Name, Description, Language string
	// Public: listed in service discovery (else hidden).
	Public bool
	// Persistent: the room stays when the last occupant leaves.
	Persistent bool
	// MembersOnly: only members (and admins, owners) may enter.
	MembersOnly bool
	// Moderated: only participants and moderators may speak; newcomers
	// without an affiliation enter as visitors.
	Moderated bool
	// Password, when not empty, must be given to enter.
	Password string
	// WhoIs says who sees real JIDs.
	WhoIs WhoIs
	// MaxUsers is the most occupants; 0 means no limit. Admins and owners
	// may enter a full room.
	MaxUsers int
	// ChangeSubject lets participants change the subject (moderators
	// always may).
	ChangeSubject bool
	// AllowInvites lets members invite others to a members-only room
	// (admins and owners always may); the invitee becomes a member.
	AllowInvites bool
	// AllowPM says who may send private messages.
	AllowPM PMPolicy
	// Broadcast are the roles whose presence occupants see.
	Broadcast Roles
	// MemberList are the roles that may read the member list of a
	// non-anonymous room (admins and owners always may).
	MemberList Roles
	// MaxHistory is the most messages of history sent on entering
	// (muc#maxhistoryfetch), bounded by Config.MaxHistory.
	MaxHistory int
	// Archive: messages are archived for MAM queries on the room.
	Archive bool
}

// NonAnonymous reports whether every occupant sees real JIDs.
func (c RoomConfig) NonAnonymous() bool { return c.WhoIs == WhoIsAnyone }

// DefaultRoomConfig is the configuration of a new room: public,
// temporary, open, unmoderated, semi-anonymous, archived, with 20 messages
// of history.
func DefaultRoomConfig() RoomConfig {
	return RoomConfig{
		Public:     true,
		AllowPM:    PMAnyone,
		Broadcast:  AllRoles,
		MemberList: AllRoles,
		MaxHistory: 20,
		Archive:    true,
	}
}

// Config configures a Service. Zero values mean the documented defaults.
type Config struct {
	// Store keeps persistent rooms. Nil keeps them in memory only: they
	// do not survive a restart.
	Store storage.Rooms
	// Archive keeps room messages for MAM queries and for the history of
	// persistent rooms after a restart, with the room's JID as the
	// owner. Nil: rooms are not archived. NewID makes the archive ids
	// (required with Archive; chat.Service.NewID).
	Archive storage.Archive
	NewID   func() string
	// Append, when set, stores room messages in the background instead
	// of the room calling Archive.AppendMessages and waiting: it queues
	// msgs (possibly none: a message that only keeps its place in line)
	// for the session from, to be stored durably in the order of the
	// calls, then calls done with the store's verdict, also in that
	// order, from another goroutine. It reports false when it cannot
	// queue (the room then stores the message itself). xmppsrv passes its
	// batching archiver, so a busy room pays one fsync per batch, not per
	// message.
	Append func(from jid.JID, msgs []storage.ArchivedMessage, done func(error)) bool
	// MayCreate says whether a user (bare JID) may create rooms; nil lets
	// every user of the server.
	MayCreate func(user jid.JID) bool
	// Defaults is the configuration of new rooms; nil means
	// DefaultRoomConfig.
	Defaults *RoomConfig
	// MaxHistory bounds the history a room keeps in memory and sends on
	// entering (default 100).
	MaxHistory int
	// AliasRooms offers each mail alias as a persistent, members-only
	// room of its members: alias sales@example.com is the room
	// sales@<service>.example.com, named after the alias, whose members
	// are the alias's members as Directory says at each entry. Needs
	// Directory.
	AliasRooms bool
	Directory  account.Directory
	// GhostSweep is how often the front end looks for occupants whose
	// session is gone without the rooms being told (default 1 minute); see
	// Service.Vanished.
	GhostSweep time.Duration
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Errors. Each carries the XMPP stanza error condition it stands for
// (Condition); operations wrap them with a text for the user.
var (
	// ErrNotFound: no such room (or it is locked, waiting for its
	// creator to configure it).
	ErrNotFound = condErr("item-not-found", "no such room")
	// ErrNoOccupant: no occupant has that nickname.
	ErrNoOccupant = condErr("item-not-found", "no occupant with that nickname")
	// ErrNotAllowed: the action is not allowed on that user (kicking an
	// owner, say), or creating rooms is restricted.
	ErrNotAllowed = condErr("not-allowed", "not allowed")
	// ErrForbidden: the actor lacks the privilege (banned users entering,
	// visitors speaking, non-owners configuring).
	ErrForbidden = condErr("forbidden", "forbidden")
	// ErrPassword: the room needs a password that was not given.
	ErrPassword = condErr("not-authorized", "a password is required to enter this room")
	// ErrMembersOnly: the room is members-only.
	ErrMembersOnly = condErr("registration-required", "this room is for members only")
	// ErrConflict: the nickname is taken or reserved, or the change would
	// leave the room without an owner or ban oneself.
	ErrConflict = condErr("conflict", "conflict")
	// ErrFull: the room has its maximum number of occupants.
	ErrFull = condErr("service-unavailable", "the room is full")
	// ErrNotOccupant: the sender is not in the room.
	ErrNotOccupant = condErr("not-acceptable", "you are not in this room")
	// ErrNotAcceptable: a configuration the service cannot accept.
	ErrNotAcceptable = condErr("not-acceptable", "not acceptable")
	// ErrBadRequest: the request is malformed.
	ErrBadRequest = condErr("bad-request", "bad request")
	// ErrBadNick: the nickname is empty or invisible.
	ErrBadNick = condErr("jid-malformed", "the nickname is empty or invisible")
	// ErrNoMessage: a MAM query names a message the room's archive does
	// not hold.
	ErrNoMessage = condErr("item-not-found", "no message with that id in the room's archive")
	// ErrNoArchive: the room keeps no archive.
	ErrNoArchive = condErr("service-unavailable", "this room keeps no archive")
	// ErrNotJoined is returned by Enter for presence that is not a join
	// (no MUC extension) from a session that is not in the room: the
	// front end tells the client it is not in the room (XEP-0045 section
	// 7.2.1: status codes 110, 307 and 333).
	ErrNotJoined = condErr("not-acceptable", "you are not in this room")
)

type condError struct{ cond, text string }

func (e *condError) Error() string { return "muc: " + e.text }

func condErr(cond, text string) error { return &condError{cond, text} }

// Condition returns the XMPP stanza error condition of an error from this
// package, "internal-server-error" for any other.
func Condition(err error) string {
	var ce *condError
	if errors.As(err, &ce) {
		return ce.cond
	}
	return "internal-server-error"
}

// Text returns the human-readable text of an error from this package,
// without its prefix.
func Text(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "muc: ")
}

// wrap adds a text to a sentinel: errors.Is still finds it.
func wrap(sentinel error, text string) error {
	return fmt.Errorf("%w: %s", sentinel, text)
}

// Service hosts rooms. Its methods are safe for concurrent use; each
// room's operations are serialised, and what a room sends reaches Wire
// in the order it happened.
type Service struct {
	cfg  Config
	wire Wire
	log  *slog.Logger

	mu     sync.Mutex
	rooms  map[jid.JID]*room
	loads  map[jid.JID]*loadCall
	joined map[jid.JID]map[jid.JID]bool // session full JID -> rooms it is in
}

type loadCall struct {
	done chan struct{}
}

// New returns a Service that sends through wire. It panics when Archive
// is set without NewID, a programming error of the caller.
func New(cfg Config, wire Wire) *Service {
	if cfg.Archive != nil && cfg.NewID == nil {
		panic("muc: Config.Archive needs Config.NewID")
	}
	if cfg.MaxHistory <= 0 {
		cfg.MaxHistory = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AliasRooms && cfg.Directory == nil {
		cfg.AliasRooms = false
	}
	return &Service{
		cfg:    cfg,
		wire:   wire,
		log:    cfg.Logger,
		rooms:  make(map[jid.JID]*room),
		loads:  make(map[jid.JID]*loadCall),
		joined: make(map[jid.JID]map[jid.JID]bool),
	}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

func (s *Service) defaults() RoomConfig {
	if s.cfg.Defaults != nil {
		return *s.cfg.Defaults
	}
	return DefaultRoomConfig()
}

// Archiving reports whether the service can archive rooms at all.
func (s *Service) Archiving() bool { return s.cfg.Archive != nil }

// lookup returns the live room at addr, loading a persistent one from the
// store (or making an alias room) when needed; nil when there is none.
// The room is returned unlocked.
func (s *Service) lookup(ctx context.Context, addr jid.JID) (*room, error) {
	for {
		s.mu.Lock()
		if r := s.rooms[addr]; r != nil {
			s.mu.Unlock()
			return r, nil
		}
		if c := s.loads[addr]; c != nil {
			s.mu.Unlock()
			select {
			case <-c.done:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		c := &loadCall{done: make(chan struct{})}
		s.loads[addr] = c
		s.mu.Unlock()
		r, err := s.load(ctx, addr)
		s.mu.Lock()
		delete(s.loads, addr)
		if r != nil && err == nil {
			s.rooms[addr] = r
		}
		s.mu.Unlock()
		close(c.done)
		return r, err
	}
}

// load reads a persistent room, or makes an alias room; nil when neither
// exists.
func (s *Service) load(ctx context.Context, addr jid.JID) (*room, error) {
	if s.cfg.Store != nil {
		rec, err := s.cfg.Store.Room(ctx, addr.String())
		switch {
		case err == nil:
			r := s.fromRecord(rec)
			if r.alias != "" && s.cfg.AliasRooms {
				if err := r.syncAlias(ctx); err != nil {
					s.log.Warn("reading an alias's members", "alias", r.alias, "err", err)
				}
			}
			if err := r.loadHistory(ctx); err != nil {
				s.log.Error("loading room history", "room", addr.String(), "err", err)
			}
			return r, nil
		case !errors.Is(err, storage.ErrNotFound):
			return nil, fmt.Errorf("muc: loading room %s: %w", addr, err)
		}
	}
	if s.cfg.AliasRooms {
		return s.aliasRoom(ctx, addr)
	}
	return nil, nil
}

// create makes a new, locked room at addr owned by owner, unless another
// session made one first (then that one is returned with created false).
func (s *Service) create(addr, owner jid.JID) (r *room, created bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[addr]; r != nil {
		return r, false
	}
	r = newRoom(s, addr, s.defaults())
	r.locked = true
	r.affs[owner] = &affiliation{aff: Owner}
	s.rooms[addr] = r
	return r, true
}

// forget drops a destroyed room. Called with r.mu held.
func (s *Service) forget(r *room) {
	s.mu.Lock()
	if s.rooms[r.jid] == r {
		delete(s.rooms, r.jid)
	}
	s.mu.Unlock()
}

// track and untrack keep the index of the rooms each session is in, for
// Gone.
func (s *Service) track(full, room jid.JID) {
	s.mu.Lock()
	m := s.joined[full]
	if m == nil {
		m = make(map[jid.JID]bool)
		s.joined[full] = m
	}
	m[room] = true
	s.mu.Unlock()
}

func (s *Service) untrack(full, room jid.JID) {
	s.mu.Lock()
	if m := s.joined[full]; m != nil {
		delete(m, room)
		if len(m) == 0 {
			delete(s.joined, full)
		}
	}
	s.mu.Unlock()
}

// Gone removes a session that ended (or became unavailable) from every
// room it was in, as if it had left each.
func (s *Service) Gone(ctx context.Context, full jid.JID) { s.gone(ctx, full, leaveOpts{}) }

// Vanished removes a ghost: full is in rooms, but its session is gone and
// nobody told the rooms (a delivery found no session for it, or a sweep
// did). The others see it leave with status code 333 (XEP-0045 section
// 7.14, removed because of a technical problem), and a self-ping
// (XEP-0410) from that address is then answered as from a non-occupant.
func (s *Service) Vanished(ctx context.Context, full jid.JID) {
	s.gone(ctx, full, leaveOpts{codes: []int{333}})
}

// Sessions lists the full JIDs that are in at least one room.
func (s *Service) Sessions() []jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jid.JID, 0, len(s.joined))
	for full := range s.joined {
		out = append(out, full)
	}
	return out
}

func (s *Service) gone(ctx context.Context, full jid.JID, opts leaveOpts) {
	s.mu.Lock()
	var rooms []*room
	for addr := range s.joined[full] {
		if r := s.rooms[addr]; r != nil {
			rooms = append(rooms, r)
		}
	}
	delete(s.joined, full)
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		if o := r.byFull[full]; o != nil {
			r.leave(ctx, o, full, nil, opts)
		}
		r.mu.Unlock()
	}
}

// Joined lists the rooms a session is in (for the muc#rooms disco
// node of a user's own client).
func (s *Service) Joined(full jid.JID) []jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []jid.JID
	for addr := range s.joined[full] {
		out = append(out, addr)
	}
	return out
}
