package xmppsrv

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

const nsBlocking = "urn:xmpp:blocking"

// blocking is simple communications blocking (XEP-0191): each account's
// blocklist, kept in the store as user data "blocklist" (one JID a line)
// and cached in memory, since the edge asks Blocked for every stanza it
// routes between users.
type blocking struct {
	srv *Server

	mu     sync.RWMutex
	lists  map[jkey]*blockList // by owner's bare JID; an empty list when none
	askers map[*Session]bool   // sessions that requested the blocklist
	write  sync.Mutex          // serialises changes, store write included
}

func newBlocking(srv *Server) *blocking {
	return &blocking{srv: srv, lists: make(map[jkey]*blockList), askers: make(map[*Session]bool)}
}

// jkey is a JID as a map key that costs no allocation to build.
type jkey struct{ local, domain, resource string }

func keyOf(j jid.JID) jkey { return jkey{j.Local(), j.Domain(), j.Resource()} }

// blockList is one owner's list. A published list is never changed, only
// replaced, so readers need no lock once they hold it.
type blockList struct {
	jids map[string]bool // as the user gave them
	keys map[jkey]bool   // parsed, for Blocked
}

func newBlockList(jids map[string]bool) *blockList {
	l := &blockList{jids: jids, keys: make(map[jkey]bool, len(jids))}
	for s := range jids {
		if j, err := jid.Parse(s); err == nil {
			l.keys[keyOf(j)] = true
		}
	}
	return l
}

func (b *blocking) Namespace() string { return nsBlocking }

func (b *blocking) Features() (account, server []string) { return nil, []string{nsBlocking} }

// list returns owner's blocklist, reading it from the store once.
func (b *blocking) list(owner jid.JID) *blockList {
	k := keyOf(owner.Bare())
	b.mu.RLock()
	l, ok := b.lists[k]
	b.mu.RUnlock()
	if ok {
		return l
	}
	jids := make(map[string]bool)
	data, err := b.srv.cfg.Store.UserData(b.srv.ctx, owner.Bare().String(), "blocklist")
	switch {
	case err == nil:
		for _, line := range strings.Split(string(data), "\n") {
			if line != "" {
				jids[line] = true
			}
		}
	case errors.Is(err, storage.ErrNotFound):
	default:
		// Not cached: the next stanza tries the store again.
		b.srv.log.Error("reading a blocklist", "user", owner.String(), "err", err)
		return newBlockList(jids)
	}
	l = newBlockList(jids)
	b.mu.Lock()
	if cur, ok := b.lists[k]; ok {
		l = cur
	} else {
		b.lists[k] = l
	}
	b.mu.Unlock()
	return l
}

// Blocked implements Blocker, matching other as XEP-0191 section 4 says:
// user@domain/resource, user@domain, domain/resource, domain.
func (b *blocking) Blocked(owner, other jid.JID) bool {
	if other.IsZero() || owner.Local() == "" {
		return false
	}
	l := b.list(owner)
	if len(l.keys) == 0 {
		return false
	}
	k := keyOf(other)
	if l.keys[k] || l.keys[jkey{domain: k.domain}] {
		return true
	}
	if k.resource != "" && (l.keys[jkey{local: k.local, domain: k.domain}] || l.keys[jkey{domain: k.domain, resource: k.resource}]) {
		return true
	}
	return false
}

// HandleIQ implements AccountHandler: blocklist, block and unblock
// (XEP-0191 section 3), on the user's own account only.
func (b *blocking) HandleIQ(s *Session, el, p *Element, owner jid.JID) bool {
	if owner != s.bare {
		return false
	}
	typ := el.Get("type")
	switch {
	case typ == "get" && p.Local == "blocklist":
		l := b.list(owner)
		b.mu.Lock()
		b.askers[s] = true
		items := slices.Sorted(func(yield func(string) bool) {
			for k := range l.jids {
				if !yield(k) {
					return
				}
			}
		})
		b.mu.Unlock()
		q := NewElement(nsBlocking, "blocklist")
		for _, j := range items {
			q.Add(NewElement(nsBlocking, "item", "jid", j))
		}
		s.send(iqResult(el, q).Bytes(nsClient))
	case typ == "set" && (p.Local == "block" || p.Local == "unblock"):
		var jids []jid.JID
		for _, it := range p.Elements() {
			if it.Local != "item" || it.Space != nsBlocking {
				continue
			}
			j, err := jid.Parse(it.Get("jid"))
			if err != nil {
				s.send(errorReply(el, "jid-malformed", "item "+it.Get("jid")+": "+err.Error()))
				return true
			}
			jids = append(jids, j)
		}
		if p.Local == "block" && len(jids) == 0 {
			s.send(errorReply(el, "bad-request", "block at least one JID"))
			return true
		}
		b.change(s, el, p.Local == "block", jids)
	default:
		s.send(errorReply(el, "bad-request", "<"+p.Local+"/> is not a blocking command for this iq type"))
	}
	return true
}

// change blocks or unblocks jids (all, when unblocking none), stores the
// list, answers, pushes the change to the resources that asked for the
// blocklist, and updates the presence the contacts see.
func (b *blocking) change(s *Session, el *Element, block bool, jids []jid.JID) {
	owner := s.bare.String()
	b.write.Lock()
	cur := b.list(s.bare).jids
	next := make(map[string]bool, len(cur)+len(jids))
	for k := range cur {
		next[k] = true
	}
	var changed []jid.JID
	if !block && len(jids) == 0 {
		for k := range cur {
			if j, err := jid.Parse(k); err == nil {
				changed = append(changed, j)
			}
		}
		clear(next)
	}
	for _, j := range jids {
		if next[j.String()] != block {
			changed = append(changed, j)
		}
		if block {
			next[j.String()] = true
		} else {
			delete(next, j.String())
		}
	}
	lines := slices.Sorted(func(yield func(string) bool) {
		for k := range next {
			if !yield(k) {
				return
			}
		}
	})
	var err error
	if len(lines) == 0 {
		err = b.srv.cfg.Store.DeleteUserData(s.ctx(), owner, "blocklist")
	} else {
		err = b.srv.cfg.Store.PutUserData(s.ctx(), owner, "blocklist", []byte(strings.Join(lines, "\n")+"\n"))
	}
	if err != nil {
		b.write.Unlock()
		b.srv.log.Error("storing a blocklist", "user", owner, "err", err)
		s.send(errorReply(el, "internal-server-error", "the blocklist could not be saved; try again"))
		return
	}
	if block {
		// Before the block takes effect, so that it can still reach
		// them: the contacts see the user go offline (section 3.3).
		for _, j := range changed {
			b.presenceTo(s.bare, j, false)
		}
	}
	b.mu.Lock()
	b.lists[keyOf(s.bare)] = newBlockList(next)
	b.mu.Unlock()
	b.write.Unlock()
	s.send(iqResult(el, nil).Bytes(nsClient))
	b.push(s.bare, el.FirstChild())
	if !block {
		for _, j := range changed {
			b.presenceTo(s.bare, j, true)
		}
	}
}

// push sends the block or unblock to every resource of owner that asked
// for the blocklist (XEP-0191 sections 3.3 and 3.4).
func (b *blocking) push(owner jid.JID, cmd *Element) {
	for _, r := range b.srv.router.Resources(owner.String()) {
		b.mu.RLock()
		asked := b.askers[r]
		b.mu.RUnlock()
		if !asked {
			continue
		}
		iq := NewElement(nsClient, "iq", "type", "set", "id", "push-"+randomID(6), "to", r.full.String()).Add(cmd)
		r.send(iq.Bytes(nsClient))
	}
}

// presenceTo sends contact owner's current presence (available) or
// unavailable presence, when contact may see owner's presence.
func (b *blocking) presenceTo(owner, contact jid.JID, available bool) {
	if contact.Local() == "" || !b.srv.Local(contact.Domain()) {
		return
	}
	if ok, err := b.srv.cfg.Roster.CanSee(b.srv.ctx, contact.Bare(), owner); err != nil || !ok {
		return
	}
	for _, r := range b.srv.router.Resources(owner.String()) {
		p := r.currentPresence()
		if p == nil {
			continue
		}
		for _, t := range b.srv.router.Resources(contact.Bare().String()) {
			if !t.isAvailable() || (!contact.IsBare() && t.full != contact) {
				continue
			}
			if available {
				t.deliverPresence(r.full.String(), withTo(p, t.full.String()))
			} else {
				t.deliverPresence(r.full.String(), []byte(`<presence type="unavailable" from="`+AttrEscape(r.full.String())+`" to="`+AttrEscape(t.full.String())+`"/>`))
			}
		}
	}
}

// Presence implements PresenceWatcher; blocking only needs Gone.
func (b *blocking) Presence(*Session, *Element, jid.JID) {}

// Gone forgets a session that ended; one that only went unavailable
// still gets pushes.
func (b *blocking) Gone(s *Session) {
	for _, r := range b.srv.router.Resources(s.bare.String()) {
		if r == s {
			return
		}
	}
	b.mu.Lock()
	delete(b.askers, s)
	b.mu.Unlock()
}
