package muc

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
	"golang.org/x/text/secure/precis"
)

// room is one live room. Everything in it is guarded by mu; a room whose
// gone is set was destroyed, and callers that find it so look it up again.
type room struct {
	svc *Service
	jid jid.JID

	mu      sync.Mutex
	gone    bool
	locked  bool // created, waiting for its owner's first configuration
	cfg     RoomConfig
	created time.Time
	alias   string // the mail alias an alias room follows
	affs    map[jid.JID]*affiliation
	occ     []*occupant // in order of entry
	byNick  map[string]*occupant
	byFull  map[jid.JID]*occupant

	subject      string
	subjectNick  string
	subjectStamp time.Time

	history []historyItem // oldest first, at most svc.cfg.MaxHistory
	// inflight counts messages handed to Config.Append and not yet
	// delivered: what the room sends meanwhile queues behind them.
	inflight int
}

type affiliation struct {
	aff    Affiliation
	nick   string // reserved nickname
	reason string
}

// occupant is one nickname in the room: one user, with one or more
// sessions (XEP-0045 section 7.2.6 lets a user's resources share a
// nickname).
type occupant struct {
	nick     string
	key      string // nickname compare key
	bare     jid.JID
	role     Role
	sessions []*session // the last one's presence is the occupant's
}

type session struct {
	full    jid.JID
	payload []byte
}

type historyItem struct {
	stamp time.Time
	data  []byte
}

func newRoom(s *Service, addr jid.JID, cfg RoomConfig) *room {
	return &room{
		svc:     s,
		jid:     addr,
		cfg:     cfg,
		created: s.now(),
		affs:    make(map[jid.JID]*affiliation),
		byNick:  make(map[string]*occupant),
		byFull:  make(map[jid.JID]*occupant),
	}
}

// nickKey is how nicknames compare: the PRECIS Nickname profile's
// comparison (case-folded, width- and space-normalised), so that "Alice"
// and "alice " cannot both be in a room.
func nickKey(nick string) string {
	k, err := precis.Nickname.CompareKey(nick)
	if err != nil {
		return nick
	}
	return k
}

// cleanNick enforces the Nickname profile: no leading, trailing or
// doubled spaces, no invisible-only nicknames.
func cleanNick(nick string) (string, error) {
	n, err := precis.Nickname.String(nick)
	if err != nil || n == "" {
		return "", ErrBadNick
	}
	return n, nil
}

func (o *occupant) last() *session { return o.sessions[len(o.sessions)-1] }

func (o *occupant) session(full jid.JID) int {
	return slices.IndexFunc(o.sessions, func(s *session) bool { return s.full == full })
}

// affOf returns the affiliation of a bare JID: its own, or a ban of its
// domain.
func (r *room) affOf(bare jid.JID) Affiliation {
	if a := r.affs[bare]; a != nil {
		return a.aff
	}
	if d, err := jid.New("", bare.Domain(), ""); err == nil {
		if a := r.affs[d]; a != nil && a.aff == Outcast {
			return Outcast
		}
	}
	return AffiliationNone
}

func (r *room) affiliationOf(o *occupant) Affiliation { return r.affOf(o.bare) }

// defaultRole is the role someone with aff enters as (XEP-0045 5.1.2).
func (r *room) defaultRole(aff Affiliation) Role {
	switch {
	case aff >= Admin:
		return Moderator
	case aff == Member:
		return Participant
	case r.cfg.Moderated:
		return Visitor
	}
	return Participant
}

// reservedBy returns who reserved nickname key, if anyone.
func (r *room) reservedBy(key string) (jid.JID, bool) {
	for j, a := range r.affs {
		if a.nick != "" && a.aff != Outcast && nickKey(a.nick) == key {
			return j, true
		}
	}
	return jid.JID{}, false
}

// seesJIDs reports whether occupant viewer may see real JIDs.
func (r *room) seesJIDs(viewer *occupant) bool {
	return r.cfg.WhoIs == WhoIsAnyone || viewer.role == Moderator
}

// broadcasts reports whether others see the presence of o.
func (r *room) broadcasts(o *occupant) bool { return r.cfg.Broadcast.Has(o.role) }

// presenceFor is o's presence as viewer sees it.
func (r *room) presenceFor(o, viewer *occupant) *Presence {
	p := &Presence{
		Room:        r.jid,
		Nick:        o.nick,
		Payload:     o.last().payload,
		Affiliation: r.affiliationOf(o),
		Role:        o.role,
	}
	if viewer == o || r.seesJIDs(viewer) {
		p.JID = o.last().full
	}
	if viewer == o {
		p.Codes = []int{110}
	}
	return p
}

// each calls fn for every session in the room.
func (r *room) each(fn func(o *occupant, s *session)) {
	for _, o := range r.occ {
		for _, s := range o.sessions {
			fn(o, s)
		}
	}
}

// broadcastPresence sends o's current presence to every occupant that may
// see it (o's own sessions always), with extra codes for o's own sessions
// and mod adjusting each copy.
func (r *room) broadcastPresence(o *occupant, selfCodes []int, mod func(p *Presence, viewer *occupant)) {
	for _, v := range r.occ {
		if v != o && !r.broadcasts(o) {
			continue
		}
		for _, s := range v.sessions {
			p := r.presenceFor(o, v)
			if v == o {
				p.Codes = append(p.Codes, selfCodes...)
			}
			if mod != nil {
				mod(p, v)
			}
			r.svc.wire.Presence(s.full, p)
		}
	}
}

// Entry is a request to enter a room, or presence sent to an occupant
// JID by someone already in it (a status change, a new nickname).
type Entry struct {
	// Room is the room's bare JID, Nick the nickname asked for.
	Room jid.JID
	Nick string
	// From is the session's full JID.
	From jid.JID
	// MUC: the presence carried the MUC extension (a join, or a request
	// to resynchronise), as opposed to a plain presence update.
	MUC      bool
	Password string
	// History limits the discussion history sent on entering.
	History HistoryLimit
	// Payload is the presence content the front end wants reflected
	// (show, status, extensions); opaque to the room.
	Payload []byte
	// ID is the presence's id, reflected in the self-presence.
	ID string
}

// HistoryLimit is the history a newcomer asks for (XEP-0045 7.2.15). A
// negative MaxChars or MaxStanzas, zero Seconds and zero Since do not
// limit.
type HistoryLimit struct {
	MaxChars   int
	MaxStanzas int
	Seconds    int
	Since      time.Time
}

// NoHistoryLimit asks for the room's default history.
var NoHistoryLimit = HistoryLimit{MaxChars: -1, MaxStanzas: -1}

// Enter handles presence from e.From to an occupant JID: entering the
// room (creating it if it does not exist and e.MUC is set), a status
// change, a nickname change, or a resynchronisation. Refusals come back
// as errors carrying their condition (ErrPassword, ErrMembersOnly,
// ErrForbidden for a banned user, ErrConflict for a taken nickname,
// ErrFull, ErrNotFound for a locked room, ErrNotAllowed when creation is
// restricted, ErrNotJoined for a presence update from outside).
func (s *Service) Enter(ctx context.Context, e Entry) error {
	nick, err := cleanNick(e.Nick)
	if err != nil {
		return err
	}
	modified := nick != e.Nick
	for {
		r, err := s.lookup(ctx, e.Room)
		if err != nil {
			return err
		}
		created := false
		if r == nil {
			if !e.MUC {
				return ErrNotJoined
			}
			if s.cfg.MayCreate != nil && !s.cfg.MayCreate(e.From.Bare()) {
				return wrap(ErrNotAllowed, "you may not create rooms here")
			}
			r, created = s.create(e.Room, e.From.Bare())
		}
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			continue
		}
		err = r.enter(ctx, e, nick, modified, created)
		r.mu.Unlock()
		return err
	}
}

func (r *room) enter(ctx context.Context, e Entry, nick string, modified, created bool) error {
	key := nickKey(nick)
	if o := r.byFull[e.From]; o != nil {
		if o.key == key {
			o.sessions[o.session(e.From)].payload = e.Payload
			if e.MUC {
				// A join from a session already in: it lost track, so it
				// gets everything again (XEP-0045 7.2.1).
				r.sendJoin(o, e.From, e, modified, false)
				r.broadcastOthers(o, e.From)
				return nil
			}
			r.broadcastPresence(o, nil, nil)
			return nil
		}
		return r.changeNick(ctx, o, e, nick, key, modified)
	}
	if !e.MUC {
		return ErrNotJoined
	}
	aff := r.affOf(e.From.Bare())
	if r.locked && aff != Owner {
		return wrap(ErrNotFound, "the room is being set up by its creator")
	}
	if aff == Outcast {
		return wrap(ErrForbidden, "you are banned from this room")
	}
	if r.cfg.MembersOnly && aff.rank() < Member.rank() {
		if r.alias == "" || !r.refreshAliasMember(ctx, e.From.Bare()) {
			return ErrMembersOnly
		}
		aff = Member
	}
	if r.cfg.Password != "" && e.Password != r.cfg.Password {
		if e.Password == "" {
			return ErrPassword
		}
		return wrap(ErrPassword, "the password is wrong")
	}
	o := r.byNick[key]
	if o != nil && o.bare != e.From.Bare() {
		return wrap(ErrConflict, "the nickname "+o.nick+" is in use by another occupant")
	}
	if who, ok := r.reservedBy(key); ok && who != e.From.Bare() {
		return wrap(ErrConflict, "the nickname "+nick+" is reserved by another member")
	}
	if o == nil && r.cfg.MaxUsers > 0 && len(r.occ) >= r.cfg.MaxUsers && aff < Admin {
		return ErrFull
	}
	if o != nil {
		// Another session of the same user takes the same nickname.
		o.sessions = append(o.sessions, &session{full: e.From, payload: e.Payload})
		r.byFull[e.From] = o
		r.svc.track(e.From, r.jid)
		r.sendJoin(o, e.From, e, modified, false)
		r.broadcastOthers(o, e.From)
		return nil
	}
	o = &occupant{nick: nick, key: key, bare: e.From.Bare(), role: r.defaultRole(aff)}
	o.sessions = []*session{{full: e.From, payload: e.Payload}}
	r.occ = append(r.occ, o)
	r.byNick[key] = o
	r.byFull[e.From] = o
	r.svc.track(e.From, r.jid)
	// The others learn of the newcomer, then the newcomer gets the room.
	if r.broadcasts(o) {
		for _, v := range r.occ {
			if v == o {
				continue
			}
			for _, s := range v.sessions {
				r.svc.wire.Presence(s.full, r.presenceFor(o, v))
			}
		}
	}
	r.sendJoin(o, e.From, e, modified, created)
	return nil
}

// broadcastOthers tells everyone but session full of o's presence.
func (r *room) broadcastOthers(o *occupant, full jid.JID) {
	for _, v := range r.occ {
		if v != o && !r.broadcasts(o) {
			continue
		}
		for _, s := range v.sessions {
			if s.full != full {
				r.svc.wire.Presence(s.full, r.presenceFor(o, v))
			}
		}
	}
}

// sendJoin sends a session what entering the room gives, in the order
// XEP-0045 7.1 requires: the other occupants, its own presence, history,
// the subject.
func (r *room) sendJoin(o *occupant, full jid.JID, e Entry, modified, created bool) {
	for _, v := range r.occ {
		if v == o || !r.broadcasts(v) {
			continue
		}
		r.svc.wire.Presence(full, r.presenceFor(v, o))
	}
	self := r.presenceFor(o, o)
	if r.cfg.NonAnonymous() {
		self.Codes = append(self.Codes, 100)
	}
	if r.archiving() {
		self.Codes = append(self.Codes, 170)
	}
	if created {
		self.Codes = append(self.Codes, 201)
	}
	if modified {
		self.Codes = append(self.Codes, 210)
	}
	self.ID = e.ID
	r.svc.wire.Presence(full, self)
	for _, h := range r.historyFor(e.History) {
		r.svc.wire.Message(full, &Message{Room: r.jid, Kind: History, Data: h.data, Stamp: h.stamp})
	}
	r.svc.wire.Message(full, &Message{Room: r.jid, Kind: Subject, Nick: r.subjectNick, Subject: r.subject, Stamp: r.subjectStamp})
}

// changeNick moves occupant o to a new nickname (XEP-0045 7.6).
func (r *room) changeNick(ctx context.Context, o *occupant, e Entry, nick, key string, modified bool) error {
	if other := r.byNick[key]; other != nil && other != o {
		return wrap(ErrConflict, "the nickname "+other.nick+" is in use")
	}
	if who, ok := r.reservedBy(key); ok && who != o.bare {
		return wrap(ErrConflict, "the nickname "+nick+" is reserved by another member")
	}
	if i := o.session(e.From); i >= 0 {
		o.sessions[i].payload = e.Payload
		// The session that asked speaks for the occupant from now on.
		s := o.sessions[i]
		o.sessions = append(append(o.sessions[:i:i], o.sessions[i+1:]...), s)
	}
	r.broadcastPresence(o, nil, func(p *Presence, _ *occupant) {
		p.Unavailable = true
		p.NewNick = nick
		p.Payload = nil
		p.Codes = append(p.Codes, 303)
	})
	delete(r.byNick, o.key)
	o.nick, o.key = nick, key
	r.byNick[key] = o
	var codes []int
	if modified {
		codes = []int{210}
	}
	r.broadcastPresence(o, codes, func(p *Presence, v *occupant) {
		if v == o {
			p.ID = e.ID
		}
	})
	return nil
}

// leaveOpts say why an occupant leaves, when it is not of its own accord.
type leaveOpts struct {
	codes   []int    // for everyone (301, 307, 321, 322, 333)
	actor   string   // who kicked or banned
	reason  string   // why
	destroy *Destroy // the room is being destroyed
	quiet   bool     // tell only the occupant itself
	// told runs once the occupant was told and before the others are
	// (the result of a kick goes to the moderator in between, XEP-0045
	// 8.2).
	told func()
}

// Exit handles unavailable presence from session from to the room:
// leaving it. payload is the presence's content (a status text, say),
// reflected to the others. Unavailable presence from outside the room is
// ignored (XEP-0045 section 17.3).
func (s *Service) Exit(ctx context.Context, room, from jid.JID, payload []byte) {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.byFull[from]; o != nil && !r.gone {
		r.leave(ctx, o, from, payload, leaveOpts{})
	}
}

// leave removes session full of o (all of o's sessions when full is
// zero), telling the room. Called with r.mu held.
func (r *room) leave(ctx context.Context, o *occupant, full jid.JID, payload []byte, opts leaveOpts) {
	var leaving []*session
	if full.IsZero() {
		leaving = o.sessions
		o.sessions = nil
	} else if i := o.session(full); i >= 0 {
		leaving = []*session{o.sessions[i]}
		o.sessions = slices.Delete(slices.Clone(o.sessions), i, i+1)
	}
	aff := r.affiliationOf(o)
	out := func(viewer *occupant, self bool) *Presence {
		p := &Presence{Room: r.jid, Nick: o.nick, Unavailable: true, Payload: payload,
			Affiliation: aff, Role: RoleNone, Actor: opts.actor, Reason: opts.reason, Destroy: opts.destroy}
		if self || (viewer != nil && r.seesJIDs(viewer)) {
			p.JID = leaving[0].full
		}
		if self {
			p.Codes = append(p.Codes, 110)
		}
		p.Codes = append(p.Codes, opts.codes...)
		return p
	}
	for _, s := range leaving {
		r.svc.wire.Presence(s.full, out(o, true))
		delete(r.byFull, s.full)
		r.svc.untrack(s.full, r.jid)
	}
	if opts.told != nil {
		opts.told()
	}
	if len(o.sessions) > 0 {
		// The user is still in with other sessions: the others see the
		// presence of the one that remains.
		if r.broadcasts(o) && !opts.quiet {
			r.broadcastPresence(o, nil, nil)
		}
		return
	}
	r.occ = slices.DeleteFunc(r.occ, func(x *occupant) bool { return x == o })
	delete(r.byNick, o.key)
	if !opts.quiet && r.broadcasts(o) {
		for _, v := range r.occ {
			for _, s := range v.sessions {
				r.svc.wire.Presence(s.full, out(v, false))
			}
		}
	}
	if len(r.occ) == 0 && opts.destroy == nil {
		r.emptied(ctx)
	}
}

// emptied handles the last occupant leaving: a temporary room (or one
// never configured) is destroyed.
func (r *room) emptied(ctx context.Context) {
	if r.locked || !r.cfg.Persistent {
		r.drop(ctx)
	}
}

// drop destroys the room: forgotten, removed from the store and its
// archive deleted. Called with r.mu held.
func (r *room) drop(ctx context.Context) {
	r.gone = true
	r.svc.forget(r)
	if r.svc.cfg.Store != nil && r.cfg.Persistent && !r.locked {
		if err := r.svc.cfg.Store.DeleteRoom(ctx, r.jid.String()); err != nil {
			r.svc.log.Error("deleting a room", "room", r.jid.String(), "err", err)
		}
	}
	if r.svc.cfg.Archive != nil {
		// Room messages are archived with the room as both owner and
		// correspondent, so one call removes them all.
		if err := r.svc.cfg.Archive.DeleteConversation(ctx, r.jid.String(), r.jid.String()); err != nil {
			r.svc.log.Error("deleting a room's archive", "room", r.jid.String(), "err", err)
		}
	}
}

// archiving reports whether the room's messages are archived.
func (r *room) archiving() bool { return r.cfg.Archive && r.svc.cfg.Archive != nil }

// historyFor picks the history a newcomer gets: the room's last messages
// within the room's MaxHistory and the newcomer's limits (XEP-0045
// 7.2.15: the least traffic that meets them all).
func (r *room) historyFor(l HistoryLimit) []historyItem {
	n := min(r.cfg.MaxHistory, r.svc.cfg.MaxHistory, len(r.history))
	if l.MaxStanzas >= 0 {
		n = min(n, l.MaxStanzas)
	}
	items := r.history[len(r.history)-n:]
	since := l.Since
	if l.Seconds > 0 {
		if t := r.svc.now().Add(-time.Duration(l.Seconds) * time.Second); t.After(since) {
			since = t
		}
	}
	if !since.IsZero() {
		i, _ := slices.BinarySearchFunc(items, since, func(h historyItem, t time.Time) int {
			if h.stamp.Before(t) {
				return -1
			}
			return 1
		})
		items = items[i:]
	}
	if l.MaxChars >= 0 {
		// Counted on the stanza as sent, with its delay (about 110 bytes).
		total := 0
		i := len(items)
		for i > 0 && total+len(items[i-1].data)+110 <= l.MaxChars {
			total += len(items[i-1].data) + 110
			i--
		}
		items = items[i:]
	}
	return items
}

// remember adds a message to the room's history.
func (r *room) remember(h historyItem) {
	max := r.svc.cfg.MaxHistory
	if len(r.history) >= max {
		r.history = slices.Delete(r.history, 0, len(r.history)-max+1)
	}
	r.history = append(r.history, h)
}

// loadHistory fills the history of a room read from the store from its
// archive.
func (r *room) loadHistory(ctx context.Context) error {
	if !r.archiving() {
		return nil
	}
	msgs, _, err := r.svc.cfg.Archive.QueryMessages(ctx, r.jid.String(), storage.ArchiveQuery{Last: true, Max: r.svc.cfg.MaxHistory})
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Body == "" {
			continue
		}
		data, err := r.svc.wire.Replay(m)
		if err != nil {
			r.svc.log.Warn("archived room message does not replay", "room", r.jid.String(), "id", m.ID, "err", err)
			continue
		}
		r.history = append(r.history, historyItem{stamp: m.Stamp, data: data})
	}
	return nil
}

// record is the room as the store keeps it.
func (r *room) record() storage.Room {
	rec := storage.Room{
		JID: r.jid.String(), Created: r.created,
		Name: r.cfg.Name, Description: r.cfg.Description, Language: r.cfg.Language,
		Public: r.cfg.Public, MembersOnly: r.cfg.MembersOnly, Moderated: r.cfg.Moderated,
		Password: r.cfg.Password, WhoIs: uint8(r.cfg.WhoIs), AllowPM: uint8(r.cfg.AllowPM),
		Broadcast: uint8(r.cfg.Broadcast), MemberList: uint8(r.cfg.MemberList),
		MaxUsers: r.cfg.MaxUsers, MaxHistory: r.cfg.MaxHistory,
		ChangeSubject: r.cfg.ChangeSubject, AllowInvites: r.cfg.AllowInvites, Archive: r.cfg.Archive,
		Subject: r.subject, SubjectNick: r.subjectNick, SubjectStamp: r.subjectStamp,
		Alias: r.alias,
	}
	for j, a := range r.affs {
		rec.Affiliations = append(rec.Affiliations, storage.RoomAffiliation{
			JID: j.String(), Affiliation: uint8(a.aff), Nick: a.nick, Reason: a.reason})
	}
	slices.SortFunc(rec.Affiliations, func(a, b storage.RoomAffiliation) int { return cmp.Compare(a.JID, b.JID) })
	return rec
}

// fromRecord makes a live room from its stored record.
func (s *Service) fromRecord(rec storage.Room) *room {
	addr, _ := jid.Parse(rec.JID)
	r := newRoom(s, addr, RoomConfig{
		Name: rec.Name, Description: rec.Description, Language: rec.Language,
		Public: rec.Public, Persistent: true, MembersOnly: rec.MembersOnly, Moderated: rec.Moderated,
		Password: rec.Password, WhoIs: WhoIs(rec.WhoIs), AllowPM: PMPolicy(rec.AllowPM),
		Broadcast: Roles(rec.Broadcast), MemberList: Roles(rec.MemberList),
		MaxUsers: rec.MaxUsers, MaxHistory: rec.MaxHistory,
		ChangeSubject: rec.ChangeSubject, AllowInvites: rec.AllowInvites, Archive: rec.Archive,
	})
	r.created = rec.Created
	r.subject, r.subjectNick, r.subjectStamp = rec.Subject, rec.SubjectNick, rec.SubjectStamp
	r.alias = rec.Alias
	for _, a := range rec.Affiliations {
		j, err := jid.Parse(a.JID)
		if err != nil {
			continue
		}
		r.affs[j] = &affiliation{aff: Affiliation(a.Affiliation), nick: a.Nick, reason: a.Reason}
	}
	return r
}

// save stores a persistent room after a change. Called with r.mu held.
func (r *room) save(ctx context.Context) error {
	if !r.cfg.Persistent || r.locked || r.svc.cfg.Store == nil {
		return nil
	}
	if err := r.svc.cfg.Store.PutRoom(ctx, r.record()); err != nil {
		r.svc.log.Error("storing a room", "room", r.jid.String(), "err", err)
		return err
	}
	return nil
}
