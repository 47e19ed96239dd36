package muc

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/parleyhq/parley/jid"
)

// RoleChange is one item of a role change (XEP-0045 sections 8.2 to 8.6,
// 9.6 to 9.8): a kick (RoleNone), voice granted or revoked, moderator
// status granted or revoked.
type RoleChange struct {
	Nick   string
	Role   Role
	Reason string
}

// AffiliationChange is one item of an affiliation change (XEP-0045
// sections 9.1 to 9.5, 10.3 to 10.8): a ban (Outcast), membership,
// admin or owner status granted or revoked.
type AffiliationChange struct {
	// JID is the user's bare JID (a full JID counts as its bare JID; a
	// bare domain bans the whole domain).
	JID         jid.JID
	Affiliation Affiliation
	// Nick, when SetNick, is the nickname to reserve for the user (empty
	// to drop the reservation).
	Nick    string
	SetNick bool
	Reason  string
}

// Item is one entry of a role or affiliation list.
type Item struct {
	// JID is the bare JID for affiliation lists, the occupant's real full
	// JID for role lists.
	JID         jid.JID
	Nick        string
	Affiliation Affiliation
	Role        Role
	Reason      string
}

// once returns fn made safe to call several times; nil stays a no-op.
func once(fn func()) func() {
	if fn == nil {
		return func() {}
	}
	var o sync.Once
	return func() { o.Do(fn) }
}

// SetRoles applies role changes asked by session from, all or none
// (XEP-0045 sections 8 and 9). ack, when not nil, is called once the
// change is certain and at the point the answer goes to the requester:
// after a kicked occupant was told, before everyone else is.
func (s *Service) SetRoles(ctx context.Context, room, from jid.JID, changes []RoleChange, ack func()) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	actor := r.byFull[from]
	if actor == nil || actor.role != Moderator {
		return wrap(ErrForbidden, "only moderators may change roles")
	}
	actorAff := r.affiliationOf(actor)
	targets := make([]*occupant, len(changes))
	for i, c := range changes {
		t := r.byNick[nickKey(c.Nick)]
		if t == nil {
			return wrap(ErrNoOccupant, "no occupant is called "+c.Nick)
		}
		targets[i] = t
		if err := r.mayChangeRole(actor, actorAff, t, c.Role); err != nil {
			return err
		}
	}
	ack = once(ack)
	for i, c := range changes {
		t := targets[i]
		if len(t.sessions) == 0 || t.role == c.Role {
			continue // already gone (kicked twice in one request), or no change
		}
		if c.Role == RoleNone {
			r.leave(ctx, t, jid.JID{}, nil, leaveOpts{codes: []int{307}, actor: actor.nick, reason: c.Reason, told: ack})
			continue
		}
		ack()
		t.role = c.Role
		r.broadcastPresence(t, nil, func(p *Presence, _ *occupant) { p.Reason = c.Reason })
	}
	ack()
	return nil
}

// mayChangeRole applies XEP-0045's rules on who may give target which
// role.
func (r *room) mayChangeRole(actor *occupant, actorAff Affiliation, t *occupant, to Role) error {
	tAff := r.affiliationOf(t)
	switch to {
	case RoleNone:
		if t == actor {
			return wrap(ErrConflict, "you cannot kick yourself")
		}
		if tAff.rank() > actorAff.rank() {
			return wrap(ErrNotAllowed, "you cannot kick someone with a higher affiliation")
		}
		if t.role == Moderator && actorAff < Admin {
			return wrap(ErrNotAllowed, "only admins and owners may kick a moderator")
		}
	case Visitor:
		// Section 8.5: not from an admin or owner, nor from anyone at or
		// above the moderator's own affiliation.
		if tAff >= Admin || (t != actor && tAff.rank() >= actorAff.rank()) {
			return wrap(ErrNotAllowed, "you cannot revoke the voice of "+t.nick)
		}
		if t.role == Moderator && actorAff < Admin {
			return wrap(ErrNotAllowed, "only admins and owners may revoke moderator status")
		}
	case Participant:
		if t.role == Moderator {
			if actorAff < Admin {
				return wrap(ErrNotAllowed, "only admins and owners may revoke moderator status")
			}
			if tAff >= Admin {
				return wrap(ErrNotAllowed, "an admin or owner stays a moderator")
			}
		}
	case Moderator:
		if actorAff < Admin {
			return wrap(ErrForbidden, "only admins and owners may grant moderator status")
		}
	default:
		return ErrBadRequest
	}
	return nil
}

// SetAffiliations applies affiliation changes asked by session from, all
// or none (XEP-0045 sections 9 and 10): admins manage members and bans,
// owners manage admins and owners too. ack, when not nil, is called once
// the change is stored, before the occupants concerned are told.
func (s *Service) SetAffiliations(ctx context.Context, room, from jid.JID, changes []AffiliationChange, ack func()) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	actorAff := r.affOf(from.Bare())
	if actorAff < Admin {
		return wrap(ErrForbidden, "only admins and owners may change affiliations")
	}
	owners := 0
	for _, a := range r.affs {
		if a.aff == Owner {
			owners++
		}
	}
	for i := range changes {
		c := &changes[i]
		c.JID = c.JID.Bare()
		cur := r.affOf(c.JID)
		if c.JID == from.Bare() {
			if c.Affiliation == Outcast {
				return wrap(ErrConflict, "you cannot ban yourself")
			}
			if cur == Owner && c.Affiliation != Owner {
				if owners <= 1 {
					return wrap(ErrConflict, "the room needs another owner before you step down")
				}
				owners--
			}
		}
		if (cur >= Admin || c.Affiliation >= Admin) && actorAff != Owner {
			if cur >= Admin {
				return wrap(ErrNotAllowed, "only owners may change the affiliation of an admin or owner")
			}
			return wrap(ErrForbidden, "only owners may grant admin or owner status")
		}
		if c.SetNick && c.Nick != "" && c.Affiliation != Outcast {
			if who, ok := r.reservedBy(nickKey(c.Nick)); ok && who != c.JID {
				return wrap(ErrConflict, "the nickname "+c.Nick+" is reserved by another member")
			}
		}
	}
	old := make([]Affiliation, len(changes))
	saved := make(map[jid.JID]*affiliation, len(changes))
	for i, c := range changes {
		old[i] = r.affOf(c.JID)
		if _, ok := saved[c.JID]; !ok {
			saved[c.JID] = r.affs[c.JID]
		}
		r.setAff(c)
	}
	if err := r.save(ctx); err != nil {
		for j, a := range saved {
			if a == nil {
				delete(r.affs, j)
			} else {
				r.affs[j] = a
			}
		}
		return err
	}
	if ack != nil {
		ack()
	}
	actorNick := ""
	if o := r.byFull[from]; o != nil {
		actorNick = o.nick
	}
	for i, c := range changes {
		if old[i] != c.Affiliation {
			r.affChanged(c.JID, actorNick, c.Reason)
		}
	}
	return nil
}

// setAff records one affiliation change.
func (r *room) setAff(c AffiliationChange) {
	cur := r.affs[c.JID]
	if c.Affiliation == AffiliationNone && !(c.SetNick && c.Nick != "") {
		delete(r.affs, c.JID)
		return
	}
	a := &affiliation{aff: c.Affiliation, reason: c.Reason}
	if cur != nil && c.Affiliation != Outcast {
		a.nick = cur.nick
	}
	if c.SetNick && c.Affiliation != Outcast {
		a.nick = c.Nick
	}
	r.affs[c.JID] = a
}

// affChanged brings the occupants of user bare in line with a new
// affiliation: banned ones and non-members of a members-only room leave,
// the others' roles follow and everyone sees the change.
func (r *room) affChanged(bare jid.JID, actor, reason string) {
	for _, o := range slices.Clone(r.occ) {
		if o.bare != bare && !(bare.Local() == "" && o.bare.Domain() == bare.Domain()) {
			continue
		}
		aff := r.affOf(o.bare)
		switch {
		case aff == Outcast:
			r.leave(context.Background(), o, jid.JID{}, nil, leaveOpts{codes: []int{301}, actor: actor, reason: reason})
			continue
		case r.cfg.MembersOnly && aff < Member:
			r.leave(context.Background(), o, jid.JID{}, nil, leaveOpts{codes: []int{321}, actor: actor, reason: reason})
			continue
		case aff >= Admin:
			o.role = Moderator
		case o.role == Moderator:
			o.role = r.defaultRole(aff)
		case aff == Member && o.role == Visitor:
			o.role = Participant
		}
		r.broadcastPresence(o, nil, func(p *Presence, _ *occupant) { p.Reason = reason })
	}
}

// List returns the users with an affiliation (XEP-0045 9.5, 9.8, 10.5,
// 10.8): the ban list to admins, the member list to admins and, in
// non-anonymous rooms, to members and the roles the room allows, the
// admin and owner lists to owners and, in non-anonymous rooms, to anyone.
func (s *Service) List(ctx context.Context, room, from jid.JID, aff Affiliation) ([]Item, error) {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	a := r.affOf(from.Bare())
	o := r.byFull[from]
	ok := false
	switch aff {
	case Outcast:
		ok = a >= Admin
	case Member:
		ok = a >= Admin || (r.cfg.NonAnonymous() && (a == Member || (o != nil && r.cfg.MemberList.Has(o.role))))
	case Admin, Owner:
		ok = a == Owner || r.cfg.NonAnonymous()
	}
	if !ok {
		return nil, wrap(ErrForbidden, "you may not see the "+aff.String()+" list")
	}
	var out []Item
	for j, x := range r.affs {
		if x.aff != aff {
			continue
		}
		it := Item{JID: j, Affiliation: aff, Nick: x.nick, Reason: x.reason}
		for _, occ := range r.occ {
			if occ.bare == j {
				it.Nick, it.Role = occ.nick, occ.role
				break
			}
		}
		if aff == Outcast {
			it.Nick = ""
		}
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b Item) int { return cmp.Compare(a.JID.String(), b.JID.String()) })
	return out, nil
}

// ListRole returns the occupants with a role: moderators to admins and
// owners, participants (the voice list) and visitors to moderators.
func (s *Service) ListRole(ctx context.Context, room, from jid.JID, role Role) ([]Item, error) {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	o := r.byFull[from]
	ok := o != nil && o.role == Moderator
	if role == Moderator {
		ok = r.affOf(from.Bare()) >= Admin
	}
	if !ok || role == RoleNone {
		return nil, wrap(ErrForbidden, "you may not see the "+role.String()+" list")
	}
	var out []Item
	for _, occ := range r.occ {
		if occ.role == role {
			out = append(out, Item{JID: occ.last().full, Nick: occ.nick, Affiliation: r.affiliationOf(occ), Role: role})
		}
	}
	return out, nil
}

// Configuration returns the room's configuration and its owners and
// admins, for an owner (XEP-0045 10.2); others get ErrForbidden.
func (s *Service) Configuration(ctx context.Context, room, from jid.JID) (RoomConfig, []jid.JID, []jid.JID, error) {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return RoomConfig{}, nil, nil, err
	}
	defer r.mu.Unlock()
	if r.affOf(from.Bare()) != Owner {
		return RoomConfig{}, nil, nil, wrap(ErrForbidden, "only owners may configure the room")
	}
	owners, admins := r.ownersAdmins()
	return r.cfg, owners, admins, nil
}

func (r *room) ownersAdmins() (owners, admins []jid.JID) {
	for j, a := range r.affs {
		switch a.aff {
		case Owner:
			owners = append(owners, j)
		case Admin:
			admins = append(admins, j)
		}
	}
	byString := func(a, b jid.JID) int { return cmp.Compare(a.String(), b.String()) }
	slices.SortFunc(owners, byString)
	slices.SortFunc(admins, byString)
	return owners, admins
}

// Configure sets the room's configuration, for an owner (XEP-0045 10.1,
// 10.2). owners and admins, when not nil, replace the owner and admin
// lists. The first configuration of a new room unlocks it (an instant
// room is configured with what Configuration returned). ack, when not
// nil, is called once the change is made, before occupants are told.
func (s *Service) Configure(ctx context.Context, room, from jid.JID, c RoomConfig, owners, admins []jid.JID, ack func()) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	if r.affOf(from.Bare()) != Owner {
		return wrap(ErrForbidden, "only owners may configure the room")
	}
	if c.MaxUsers < 0 || c.MaxHistory < 0 {
		return wrap(ErrNotAcceptable, "limits cannot be negative")
	}
	if owners != nil && len(owners) == 0 {
		return wrap(ErrNotAcceptable, "a room needs an owner")
	}
	if r.alias != "" && (!c.MembersOnly || !c.Persistent) {
		return wrap(ErrNotAcceptable, "the room of an alias stays persistent and members-only")
	}
	prev, prevAffs, wasLocked := r.cfg, cloneAffs(r.affs), r.locked
	r.cfg = c
	r.locked = false
	var changed []jid.JID
	if owners != nil || admins != nil {
		changed = r.setLists(owners, admins)
	}
	if err := r.save(ctx); err != nil {
		r.cfg, r.affs, r.locked = prev, prevAffs, wasLocked
		return err
	}
	if prev.Persistent && !c.Persistent && s.cfg.Store != nil {
		if err := s.cfg.Store.DeleteRoom(ctx, r.jid.String()); err != nil {
			s.log.Error("removing a room made temporary", "room", r.jid.String(), "err", err)
		}
	}
	if ack != nil {
		ack()
	}
	if !wasLocked {
		var codes []int
		if prev.WhoIs != c.WhoIs {
			codes = append(codes, map[bool]int{true: 172, false: 173}[c.NonAnonymous()])
		}
		if prev.Archive != c.Archive && s.cfg.Archive != nil {
			codes = append(codes, map[bool]int{true: 170, false: 171}[c.Archive])
		}
		rest := c
		rest.WhoIs, rest.Archive = prev.WhoIs, prev.Archive
		if rest != prev || len(changed) > 0 {
			codes = append(codes, 104)
		}
		if len(codes) > 0 {
			msg := &Message{Room: r.jid, Kind: Status, Codes: codes}
			r.each(func(_ *occupant, ss *session) { s.wire.Message(ss.full, msg) })
		}
	}
	actor := ""
	if o := r.byFull[from]; o != nil {
		actor = o.nick
	}
	for _, j := range changed {
		r.affChanged(j, actor, "")
	}
	if c.MembersOnly && !prev.MembersOnly {
		for _, o := range slices.Clone(r.occ) {
			if r.affiliationOf(o) < Member {
				r.leave(ctx, o, jid.JID{}, nil, leaveOpts{codes: []int{322}, actor: actor})
			}
		}
	}
	if len(r.occ) == 0 && !c.Persistent {
		r.drop(ctx)
	}
	return nil
}

func cloneAffs(m map[jid.JID]*affiliation) map[jid.JID]*affiliation {
	out := make(map[jid.JID]*affiliation, len(m))
	for k, v := range m {
		c := *v
		out[k] = &c
	}
	return out
}

// setLists replaces the owner and admin lists (nil leaves one as it is)
// and returns the users whose affiliation changed. Those dropped from a
// list become members of a members-only room, unaffiliated otherwise.
func (r *room) setLists(owners, admins []jid.JID) []jid.JID {
	want := make(map[jid.JID]Affiliation)
	if admins != nil {
		for _, j := range admins {
			want[j.Bare()] = Admin
		}
	}
	if owners != nil {
		for _, j := range owners {
			want[j.Bare()] = Owner
		}
	}
	var changed []jid.JID
	for j, a := range r.affs {
		if (a.aff == Owner && owners != nil) || (a.aff == Admin && admins != nil) {
			if _, keep := want[j]; !keep {
				if r.cfg.MembersOnly {
					a.aff = Member
				} else if a.nick == "" {
					delete(r.affs, j)
				} else {
					a.aff = Member
				}
				changed = append(changed, j)
			}
		}
	}
	for j, aff := range want {
		cur := r.affs[j]
		if cur != nil && cur.aff == aff {
			continue
		}
		if cur == nil {
			cur = &affiliation{}
			r.affs[j] = cur
		}
		cur.aff = aff
		changed = append(changed, j)
	}
	return changed
}

// CancelConfig handles an owner cancelling the configuration form: a room
// never configured is destroyed (XEP-0045 10.1.3), any other keeps its
// configuration.
func (s *Service) CancelConfig(ctx context.Context, room, from jid.JID) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	if r.affOf(from.Bare()) != Owner {
		return wrap(ErrForbidden, "only owners may configure the room")
	}
	if r.locked {
		r.destroy(ctx, &Destroy{})
	}
	return nil
}

// Destroy destroys the room for an owner (XEP-0045 10.9): every occupant
// is told, with d, and the room, its record and its archive are removed.
// ack, when not nil, is called after the occupants were told.
func (s *Service) Destroy(ctx context.Context, room, from jid.JID, d Destroy, ack func()) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	if r.affOf(from.Bare()) != Owner {
		return wrap(ErrForbidden, "only owners may destroy the room")
	}
	r.destroy(ctx, &d)
	if ack != nil {
		ack()
	}
	return nil
}

func (r *room) destroy(ctx context.Context, d *Destroy) {
	for _, o := range slices.Clone(r.occ) {
		for _, ss := range o.sessions {
			r.svc.wire.Presence(ss.full, &Presence{Room: r.jid, Nick: o.nick, Unavailable: true,
				Affiliation: AffiliationNone, Role: RoleNone, Destroy: d, Codes: []int{110}})
			delete(r.byFull, ss.full)
			r.svc.untrack(ss.full, r.jid)
		}
	}
	r.occ = nil
	clear(r.byNick)
	r.drop(ctx)
}

// Info describes a room for service discovery (XEP-0045 6.4).
type Info struct {
	JID    jid.JID
	Config RoomConfig // without the password
	// PasswordProtected: a password is needed to enter.
	PasswordProtected bool
	Occupants         int
	Subject           string
	// Owners are the contact addresses of a non-anonymous room.
	Owners []jid.JID
	// Archived: the room answers MAM queries.
	Archived bool
	// Nick is the asker's reserved nickname (x-roomuser-item), if any.
	Nick string
}

// Info returns what service discovery tells user about the room.
func (s *Service) Info(ctx context.Context, room, user jid.JID) (Info, error) {
	r, err := s.visible(ctx, room, user)
	if err != nil {
		return Info{}, err
	}
	defer r.mu.Unlock()
	in := Info{JID: r.jid, Config: r.cfg, PasswordProtected: r.cfg.Password != "",
		Occupants: len(r.occ), Subject: r.subject, Archived: r.archiving()}
	in.Config.Password = ""
	if r.cfg.NonAnonymous() {
		in.Owners, _ = r.ownersAdmins()
	}
	if a := r.affs[user.Bare()]; a != nil && a.aff != Outcast {
		in.Nick = a.nick
	}
	return in, nil
}
