package muc

import (
	"context"

	"github.com/parleyhq/parley/jid"
)

// Registration returns the nickname user reserved in room (XEP-0045
// 7.10 and 7.12): registered is true when user is a member, admin or owner
// of the room, nick is "" when they reserved none.
func (s *Service) Registration(ctx context.Context, room, user jid.JID) (nick string, registered bool, err error) {
	r, err := s.visible(ctx, room, user)
	if err != nil {
		return "", false, err
	}
	defer r.mu.Unlock()
	a := r.affs[user.Bare()]
	if a == nil || a.aff == Outcast {
		return "", false, nil
	}
	return a.nick, a.aff >= Member, nil
}

// Register registers user with room under nick (XEP-0045 7.10): the
// nickname is reserved for them, so nobody else may enter with it, and
// they become a member (an admin or owner keeps that affiliation). In a
// members-only room only those already on its lists may register, since
// registering would otherwise be a way in; banned users may not. A
// nickname reserved by or in use by someone else is ErrConflict.
func (s *Service) Register(ctx context.Context, room, user jid.JID, nick string) error {
	nick, err := cleanNick(nick)
	if err != nil {
		return err
	}
	r, err := s.visible(ctx, room, user)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	bare := user.Bare()
	cur := r.affOf(bare)
	switch {
	case cur == Outcast:
		return wrap(ErrForbidden, "you are banned from this room")
	case r.cfg.MembersOnly && cur < Member && !(r.alias != "" && r.refreshAliasMember(ctx, bare)):
		return wrap(ErrNotAllowed, "this room is for members only: an admin adds members")
	}
	key := nickKey(nick)
	if who, ok := r.reservedBy(key); ok && who != bare {
		return wrap(ErrConflict, "the nickname "+nick+" is reserved by another member")
	}
	if o := r.byNick[key]; o != nil && o.bare != bare {
		return wrap(ErrConflict, "the nickname "+nick+" is in use by another occupant")
	}
	aff := max(cur, Member)
	if cur == AffiliationNone {
		aff = Member
	}
	saved := r.affs[bare]
	r.setAff(AffiliationChange{JID: bare, Affiliation: aff, Nick: nick, SetNick: true})
	if err := r.save(ctx); err != nil {
		if saved == nil {
			delete(r.affs, bare)
		} else {
			r.affs[bare] = saved
		}
		return err
	}
	if cur != aff {
		r.affChanged(bare, "", "")
	}
	return nil
}

// Unregister cancels user's registration with room (XEP-0077 section 3.2
// as XEP-0045 uses it): a member's membership goes with the reserved
// nickname; an admin or owner keeps the affiliation and loses only the
// nickname, since giving up ownership takes another owner (section 10).
func (s *Service) Unregister(ctx context.Context, room, user jid.JID) error {
	r, err := s.visible(ctx, room, user)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	bare := user.Bare()
	saved := r.affs[bare]
	if saved == nil || saved.aff == Outcast {
		return wrap(ErrNotFound, "you are not registered with this room")
	}
	next := AffiliationNone
	if saved.aff >= Admin {
		next = saved.aff
	}
	r.setAff(AffiliationChange{JID: bare, Affiliation: next, SetNick: true})
	if err := r.save(ctx); err != nil {
		r.affs[bare] = saved
		return err
	}
	if next != saved.aff {
		r.affChanged(bare, "", "")
	}
	return nil
}
