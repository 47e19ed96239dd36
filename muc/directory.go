package muc

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Summary names a room in a listing.
type Summary struct {
	JID  jid.JID
	Name string
}

// PublicRooms lists the public rooms of the service at domain
// (conference.example.com) for user, by JID (XEP-0045 6.3): rooms in
// use, persistent rooms, and, with alias rooms, the rooms of the aliases
// user belongs to.
func (s *Service) PublicRooms(ctx context.Context, domain string, user jid.JID) ([]Summary, error) {
	seen := make(map[jid.JID]bool)
	var out []Summary
	add := func(j jid.JID, name string) {
		if !seen[j] && j.Domain() == domain {
			seen[j] = true
			out = append(out, Summary{JID: j, Name: name})
		}
	}
	s.mu.Lock()
	live := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		live = append(live, r)
	}
	s.mu.Unlock()
	for _, r := range live {
		r.mu.Lock()
		if !r.gone && !r.locked && r.cfg.Public {
			add(r.jid, r.cfg.Name)
		} else {
			seen[r.jid] = true // its stored record may be stale
		}
		r.mu.Unlock()
	}
	if s.cfg.Store != nil {
		after := ""
		for {
			page, err := s.cfg.Store.ListRooms(ctx, after, 500)
			if err != nil {
				return nil, err
			}
			for _, rec := range page {
				if j, err := jid.Parse(rec.JID); err == nil && rec.Public {
					add(j, rec.Name)
				}
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].JID
		}
	}
	if s.cfg.AliasRooms && !user.IsZero() {
		mail := parentDomain(domain)
		entries, err := s.cfg.Directory.List(ctx, mail)
		if err != nil {
			s.log.Warn("listing aliases for rooms", "domain", mail, "err", err)
		}
		for _, e := range entries {
			if e.Kind != account.Alias {
				continue
			}
			local, _, _ := strings.Cut(e.Address, "@")
			j, err := jid.New(local, domain, "")
			if err != nil || seen[j] {
				continue
			}
			if ok, _ := s.isAliasMember(ctx, e.Address, user.Bare()); ok {
				add(j, aliasName(e))
			}
		}
	}
	slices.SortFunc(out, func(a, b Summary) int { return cmp.Compare(a.JID.String(), b.JID.String()) })
	return out, nil
}

// parentDomain is the mail domain of a service domain: conference.x.com
// serves x.com.
func parentDomain(d string) string {
	if _, rest, ok := strings.Cut(d, "."); ok {
		return rest
	}
	return d
}

func aliasName(e account.Entry) string {
	if e.Name != "" {
		return e.Name
	}
	return e.Address
}

// aliasAddress is the alias a room would stand for.
func aliasAddress(room jid.JID) string {
	return room.Local() + "@" + parentDomain(room.Domain())
}

func (s *Service) isAliasMember(ctx context.Context, alias string, user jid.JID) (bool, error) {
	members, err := s.cfg.Directory.Members(ctx, alias)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if j, err := jid.Parse(strings.TrimSpace(m)); err == nil && j.Bare() == user {
			return true, nil
		}
	}
	return false, nil
}

// aliasRoom makes the room of the alias room stands for, if there is one:
// persistent, members-only, non-anonymous and archived, named after the
// alias, with the alias's members as members. It is stored at once, so its
// history and subject outlive a restart.
func (s *Service) aliasRoom(ctx context.Context, addr jid.JID) (*room, error) {
	if addr.Local() == "" {
		return nil, nil
	}
	alias := aliasAddress(addr)
	e, err := s.cfg.Directory.Lookup(ctx, alias)
	if errors.Is(err, account.ErrNotFound) || (err == nil && e.Kind != account.Alias) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cfg := s.defaults()
	cfg.Name = aliasName(e)
	cfg.Persistent, cfg.MembersOnly, cfg.Public = true, true, true
	cfg.WhoIs = WhoIsAnyone
	cfg.Archive = true
	cfg.Password = ""
	r := newRoom(s, addr, cfg)
	r.alias = strings.ToLower(e.Address)
	if err := r.syncAlias(ctx); err != nil {
		return nil, err
	}
	if err := r.save(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// syncAlias makes the room's members the alias's members: new members
// join the member list, former ones leave it (admins and owners an owner
// appointed stay).
func (r *room) syncAlias(ctx context.Context) error {
	members, err := r.svc.cfg.Directory.Members(ctx, r.alias)
	if err != nil {
		return err
	}
	want := make(map[jid.JID]bool, len(members))
	for _, m := range members {
		if j, err := jid.Parse(strings.TrimSpace(m)); err == nil && j.Local() != "" {
			want[j.Bare()] = true
		}
	}
	for j, a := range r.affs {
		if a.aff == Member && !want[j] {
			delete(r.affs, j)
		}
	}
	for j := range want {
		if r.affs[j] == nil {
			r.affs[j] = &affiliation{aff: Member}
		}
	}
	return nil
}

// refreshAliasMember lets in a user who joined the alias since the room
// last looked. Called with r.mu held.
func (r *room) refreshAliasMember(ctx context.Context, user jid.JID) bool {
	ok, err := r.svc.isAliasMember(ctx, r.alias, user)
	if err != nil || !ok {
		return false
	}
	r.affs[user] = &affiliation{aff: Member}
	r.save(ctx)
	return true
}

// Query reads the room's archive for user (XEP-0313 section 4.1.2: MUC
// archives). Access follows entry: outcasts never, non-members of a
// members-only room neither, and password-protected rooms only to
// occupants and members. showJIDs reports whether user may see the real
// JIDs of senders (non-anonymous room, or a moderator, admin or owner).
func (s *Service) Query(ctx context.Context, room, user jid.JID, q storage.ArchiveQuery) (msgs []storage.ArchivedMessage, complete, showJIDs bool, err error) {
	r, err := s.visible(ctx, room, user)
	if err != nil {
		return nil, false, false, err
	}
	aff := r.affOf(user.Bare())
	o := r.byFull[user]
	archiving := r.archiving()
	denied := aff == Outcast ||
		(r.cfg.MembersOnly && aff < Member && (r.alias == "" || !r.refreshAliasMember(ctx, user.Bare()))) ||
		(r.cfg.Password != "" && o == nil && aff < Member)
	showJIDs = r.cfg.NonAnonymous() || aff >= Admin || (o != nil && o.role == Moderator)
	r.mu.Unlock()
	switch {
	case !archiving:
		return nil, false, false, ErrNoArchive
	case denied:
		return nil, false, false, wrap(ErrForbidden, "you may not read this room's archive")
	}
	msgs, complete, err = s.cfg.Archive.QueryMessages(ctx, room.String(), q)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, false, false, ErrNoMessage
		}
		return nil, false, false, err
	}
	return msgs, complete, showJIDs, nil
}
