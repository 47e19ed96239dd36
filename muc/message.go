package muc

import (
	"context"
	"fmt"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Said is a groupchat message as the front end builds it once the room
// has named the sender and the archive id.
type Said struct {
	// Data is the stanza every occupant receives, without a 'to'.
	Data []byte
	// Archived is the stanza as the archive keeps it (the front end adds
	// the sender's real JID there, for those allowed to see it). Nil: the
	// message is not archived and not kept as history (a chat state).
	Archived []byte
	// Body is the message's text, for full-text search of the archive.
	Body string
	// ClientID is the sender's id for the message.
	ClientID string
	// Failed, when not nil, is told when storing the message failed after
	// Speak returned (Config.Append); nobody received it then.
	Failed func(error)
}

// room returns the live room at addr, locked, or ErrNotFound. Locked rooms
// are found only by their owners.
func (s *Service) room(ctx context.Context, addr jid.JID) (*room, error) {
	for {
		r, err := s.lookup(ctx, addr)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, ErrNotFound
		}
		r.mu.Lock()
		if !r.gone {
			return r, nil
		}
		r.mu.Unlock()
	}
}

// visible returns the room for a request from user: a locked room only
// for its owners.
func (s *Service) visible(ctx context.Context, addr, user jid.JID) (*room, error) {
	r, err := s.room(ctx, addr)
	if err != nil {
		return nil, err
	}
	if r.locked && r.affOf(user.Bare()) != Owner {
		r.mu.Unlock()
		return nil, ErrNotFound
	}
	return r, nil
}

// Speak sends a groupchat message from session from to everyone in the
// room (XEP-0045 7.4). build makes the stanza once the sender's nickname
// and the archive id are known (id is empty when the room does not
// archive). The message is archived before anyone receives it; an
// archive failure returns an error and nobody receives it. Visitors of a
// moderated room get ErrForbidden, non-occupants ErrNotOccupant.
func (s *Service) Speak(ctx context.Context, room, from jid.JID, build func(nick, id string) Said) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	o := r.byFull[from]
	if o == nil {
		return ErrNotOccupant
	}
	if o.role < Participant {
		return wrap(ErrForbidden, "visitors may not speak in this moderated room")
	}
	id := ""
	if r.archiving() {
		id = s.cfg.NewID()
	}
	said := build(o.nick, id)
	now := s.now()
	msg := &Message{Room: r.jid, Kind: Groupchat, Nick: o.nick, Data: said.Data, Stamp: now}
	deliver := func() {
		if said.Archived != nil {
			r.remember(historyItem{stamp: now, data: said.Data})
		}
		r.each(func(_ *occupant, ss *session) { s.wire.Message(ss.full, msg) })
	}
	var msgs []storage.ArchivedMessage
	if said.Archived != nil && id != "" {
		msgs = []storage.ArchivedMessage{{
			Owner: r.jid.String(), ID: id, With: r.jid.String(), Stamp: now,
			ClientID: said.ClientID, Body: said.Body, Data: said.Archived,
		}}
	}
	if len(msgs) == 0 && r.inflight == 0 {
		deliver()
		return nil
	}
	if r.later(from, msgs, func(err error) {
		if err != nil {
			s.log.Error("archiving a room message", "room", r.jid.String(), "err", err)
			if said.Failed != nil {
				said.Failed(err)
			}
			return
		}
		deliver()
	}) {
		return nil
	}
	if len(msgs) > 0 {
		if err := s.cfg.Archive.AppendMessages(ctx, msgs); err != nil {
			return fmt.Errorf("muc: archiving a message of %s: %w", r.jid, err)
		}
	}
	deliver()
	return nil
}

// later hands msgs to Config.Append and runs then, under the room's lock,
// once they are stored, unless the room is gone by then. It reports false
// when there is no Append or it could not queue. Called with r.mu held.
func (r *room) later(from jid.JID, msgs []storage.ArchivedMessage, then func(error)) bool {
	if r.svc.cfg.Append == nil {
		return false
	}
	r.inflight++
	ok := r.svc.cfg.Append(from, msgs, func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.inflight--
		if !r.gone {
			then(err)
		}
	})
	if !ok {
		r.inflight--
	}
	return ok
}

// SetSubject changes the room's subject (XEP-0045 8.1): moderators may,
// and participants when the room allows it; others get ErrForbidden. id
// is the id of the message that asked, reflected to everyone.
func (s *Service) SetSubject(ctx context.Context, room, from jid.JID, subject, id string) error {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	o := r.byFull[from]
	if o == nil {
		return ErrNotOccupant
	}
	if o.role < Moderator && !(r.cfg.ChangeSubject && o.role >= Participant) {
		return wrap(ErrForbidden, "only moderators may change the subject of this room")
	}
	r.subject, r.subjectNick, r.subjectStamp = subject, o.nick, s.now()
	if err := r.save(ctx); err != nil {
		return err
	}
	msg := &Message{Room: r.jid, Kind: Subject, Nick: o.nick, Subject: subject, Stamp: r.subjectStamp, ID: id, Live: true}
	send := func() { r.each(func(_ *occupant, ss *session) { s.wire.Message(ss.full, msg) }) }
	if r.inflight > 0 && r.later(from, nil, func(error) { send() }) {
		return nil // behind the messages said before it
	}
	send()
	return nil
}

// Private checks a private message from session from to the occupant
// nick (XEP-0045 7.5) and returns the sender's nickname and the sessions
// to deliver it to. ErrNotOccupant: the sender is not in the room;
// ErrNoOccupant: nobody has that nickname; ErrForbidden: the room does
// not let the sender send private messages.
func (s *Service) Private(ctx context.Context, room, from jid.JID, nick string) (string, []jid.JID, error) {
	return s.target(ctx, room, from, nick, true)
}

// Target returns the sender's nickname and the sessions of occupant nick,
// for an iq one occupant sends another through the room (XEP-0045 17.4):
// both must be in the room (ErrNotOccupant, ErrNoOccupant).
func (s *Service) Target(ctx context.Context, room, from jid.JID, nick string) (string, []jid.JID, error) {
	return s.target(ctx, room, from, nick, false)
}

func (s *Service) target(ctx context.Context, room, from jid.JID, nick string, pm bool) (string, []jid.JID, error) {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return "", nil, err
	}
	defer r.mu.Unlock()
	o := r.byFull[from]
	if o == nil {
		return "", nil, ErrNotOccupant
	}
	to := r.byNick[nickKey(nick)]
	if to == nil {
		return "", nil, ErrNoOccupant
	}
	if pm {
		switch r.cfg.AllowPM {
		case PMNobody:
			return "", nil, wrap(ErrForbidden, "private messages are not allowed in this room")
		case PMModerators:
			if o.role < Moderator {
				return "", nil, wrap(ErrForbidden, "only moderators may send private messages in this room")
			}
		case PMParticipants:
			if o.role < Participant {
				return "", nil, wrap(ErrForbidden, "visitors may not send private messages in this room")
			}
		}
	}
	out := make([]jid.JID, len(to.sessions))
	for i, ss := range to.sessions {
		out[i] = ss.full
	}
	return o.nick, out, nil
}

// OccupantJID returns the real JID of occupant nick.
func (s *Service) OccupantJID(room jid.JID, nick string) (jid.JID, bool) {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return jid.JID{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.byNick[nickKey(nick)]; o != nil && !r.gone {
		return o.last().full, true
	}
	return jid.JID{}, false
}

// SameNick reports whether two nicknames are the same in a room (they
// compare case-insensitively, with spaces and widths normalised).
func (s *Service) SameNick(a, b string) bool { return nickKey(a) == nickKey(b) }

// VoiceRequest checks a visitor's request for voice in a moderated room
// (XEP-0045 7.13) and returns the visitor's nickname and the sessions of
// the moderators, who get the approval form. ErrNotOccupant: the sender is
// not in the room; ErrNotAcceptable: it has voice already.
func (s *Service) VoiceRequest(ctx context.Context, room, from jid.JID) (string, []jid.JID, error) {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return "", nil, err
	}
	defer r.mu.Unlock()
	o := r.byFull[from]
	if o == nil {
		return "", nil, ErrNotOccupant
	}
	if o.role != Visitor {
		return "", nil, wrap(ErrNotAcceptable, "you have voice already")
	}
	var mods []jid.JID
	for _, m := range r.occ {
		if m.role == Moderator {
			for _, ss := range m.sessions {
				mods = append(mods, ss.full)
			}
		}
	}
	return o.nick, mods, nil
}

// Occupant returns the nickname of session full in the room, and whether
// it is in (XEP-0410 self-ping).
func (s *Service) Occupant(room, full jid.JID) (string, bool) {
	s.mu.Lock()
	r := s.rooms[room]
	s.mu.Unlock()
	if r == nil {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.byFull[full]; o != nil && !r.gone {
		return o.nick, true
	}
	return "", false
}

// Exists reports whether a room (unlocked, or locked and owned by user)
// is at addr.
func (s *Service) Exists(ctx context.Context, addr, user jid.JID) bool {
	r, err := s.visible(ctx, addr, user)
	if err != nil {
		return false
	}
	r.mu.Unlock()
	return true
}

// Invite checks a mediated invitation (XEP-0045 7.8.2) from session from
// to invitee (a bare JID) and returns the room's password, which the
// invitation carries. In a members-only room only admins and owners may
// invite, and members too when the room allows invitations; the invitee
// then becomes a member, so the invitation can be taken up. Invitations
// to an open room change no affiliation.
func (s *Service) Invite(ctx context.Context, room, from, invitee jid.JID) (string, error) {
	r, err := s.visible(ctx, room, from)
	if err != nil {
		return "", err
	}
	defer r.mu.Unlock()
	aff := r.affOf(from.Bare())
	if r.byFull[from] == nil && aff < Admin {
		return "", ErrNotOccupant
	}
	if r.cfg.MembersOnly {
		if aff < Admin && !(r.cfg.AllowInvites && aff == Member) {
			return "", wrap(ErrForbidden, "only admins may invite to this members-only room")
		}
		invitee = invitee.Bare()
		if cur := r.affOf(invitee); cur == Outcast {
			return "", wrap(ErrNotAllowed, invitee.String()+" is banned from this room")
		} else if cur == AffiliationNone {
			r.affs[invitee] = &affiliation{aff: Member}
			if err := r.save(ctx); err != nil {
				delete(r.affs, invitee)
				return "", err
			}
			r.affChanged(invitee, "", "")
		}
	}
	return r.cfg.Password, nil
}
