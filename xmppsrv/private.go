package xmppsrv

import (
	"bytes"
	"errors"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/pubsub"
	"github.com/parleyhq/parley/storage"
)

const (
	nsPrivate    = "jabber:iq:private"
	nsBookmarks  = "storage:bookmarks"
	nsBookmarks2 = "urn:xmpp:bookmarks:1"
)

// bookmarkOptions are the publish-options XEP-0402 section 3.3 asks for:
// a private node that keeps every bookmark and does not push the last one
// at login.
var bookmarkOptions = map[string]string{
	pubsub.FieldPersistItems:      "true",
	pubsub.FieldMaxItems:          "max",
	pubsub.FieldSendLastPublished: pubsub.SendNever,
	pubsub.FieldAccessModel:       pubsub.Whitelist,
}

// privateStorage is private XML storage (XEP-0049). Each stored element
// is user data under "private:<name>:<namespace>". Bookmarks
// (storage:bookmarks, XEP-0048) are not kept there but in the PEP node of
// XEP-0402 (urn:xmpp:bookmarks:1), one item per room, so that clients of
// either kind see the same bookmarks (the "#compat" feature of XEP-0402
// section 5.3).
type privateStorage struct {
	srv *Server
	pep *PEP
}

func (p *privateStorage) Namespace() string { return nsPrivate }

func (p *privateStorage) Features() (account, server []string) {
	return []string{nsBookmarks2 + "#compat", nsBookmarks2 + "#compat-pep"}, []string{nsPrivate}
}

func privateKey(e *Element) string { return "private:" + e.Local + ":" + e.Space }

// HandleIQ implements AccountHandler (XEP-0049 section 2).
func (p *privateStorage) HandleIQ(s *Session, el, q *Element, owner jid.JID) bool {
	if owner != s.bare {
		s.send(errorReply(el, "forbidden", "private data is only its owner's"))
		return true
	}
	kids := q.Elements()
	if len(kids) == 0 {
		s.send(errorReply(el, "not-acceptable", "name the element to get or store"))
		return true
	}
	for _, k := range kids {
		if k.Space == nsPrivate || k.Space == nsVCard || k.Space == nsClient || k.Space == "" {
			s.send(errorReply(el, "not-acceptable", k.Space+" is a reserved namespace"))
			return true
		}
	}
	ctx := s.ctx()
	if el.Get("type") == "get" {
		if len(kids) != 1 {
			s.send(errorReply(el, "bad-request", "get one element at a time"))
			return true
		}
		var out *Element
		if kids[0].Space == nsBookmarks && kids[0].Local == "storage" {
			var err error
			if out, err = p.bookmarks(s); err != nil {
				p.srv.log.Error("reading bookmarks", "user", owner.String(), "err", err)
				s.send(errorReply(el, "internal-server-error", "try again"))
				return true
			}
		} else {
			out = &Element{Space: kids[0].Space, Local: kids[0].Local}
			b, err := p.srv.cfg.Store.UserData(ctx, owner.Address(), privateKey(kids[0]))
			switch {
			case err == nil:
				if stored, err := parseElement(b); err == nil {
					out = stored
				}
			case !errors.Is(err, storage.ErrNotFound):
				p.srv.log.Error("reading private data", "user", owner.String(), "err", err)
				s.send(errorReply(el, "internal-server-error", "try again"))
				return true
			}
		}
		s.send(iqResult(el, NewElement(nsPrivate, "query").Add(out)).Bytes(nsClient))
		return true
	}
	for _, k := range kids {
		if err := p.srv.cfg.Store.PutUserData(ctx, owner.Address(), privateKey(k), k.Bytes("")); err != nil {
			p.srv.log.Error("storing private data", "user", owner.String(), "err", err)
			s.send(errorReply(el, "internal-server-error", "the data could not be saved; try again"))
			return true
		}
	}
	for _, k := range kids {
		if k.Space == nsBookmarks && k.Local == "storage" {
			p.bookmarksToPEP(s, k)
			p.legacyPEP(s)
		}
	}
	s.send(iqResult(el, nil).Bytes(nsClient))
	return true
}

// legacyOptions are those of the XEP-0048 PEP node (XEP-0048 section 3.3,
// XEP-0223): private, kept.
var legacyOptions = map[string]string{
	pubsub.FieldPersistItems: "true",
	pubsub.FieldAccessModel:  pubsub.Whitelist,
}

// fromLegacyPEP takes a <storage xmlns='storage:bookmarks'/> a client
// published to the XEP-0048 PEP node: its conferences go to the XEP-0402
// node (the "#compat-pep" feature of XEP-0402 section 5.3), the rest
// (URLs) is kept as XEP-0049 keeps it.
func (p *privateStorage) fromLegacyPEP(s *Session, st *Element) {
	if err := p.srv.cfg.Store.PutUserData(s.ctx(), s.bare.Address(), privateKey(st), st.Bytes("")); err != nil {
		p.srv.log.Error("storing bookmarks", "user", s.bare.String(), "err", err)
	}
	p.bookmarksToPEP(s, st)
}

// legacyPEP republishes the XEP-0048 PEP node (item "current") from the
// XEP-0402 node after a change that did not come through it, and notifies
// it, so that clients of the older protocol see the same bookmarks.
func (p *privateStorage) legacyPEP(s *Session) {
	st, err := p.bookmarks(s)
	if err != nil {
		p.srv.log.Error("reading bookmarks", "user", s.bare.String(), "err", err)
		return
	}
	req := pubsub.Publish{Node: nsBookmarks, Item: pubsub.Item{ID: "current", Payload: st.Bytes("")}}
	if _, err := p.pep.svc.Lookup(s.ctx(), s.bare, nsBookmarks); errors.Is(err, pubsub.ErrNotFound) {
		req.Options = legacyOptions
	}
	res, err := p.pep.svc.Publish(s.ctx(), s.bare, s.full, req)
	if err != nil {
		p.srv.log.Error("converting bookmarks to XEP-0048 PEP", "user", s.bare.String(), "err", err)
		return
	}
	p.pep.notify(res.Node, p.pep.itemElement(nsPubsubEvent, res.Item, res.Node.Config.DeliverPayloads()), s.full)
}

// bookmarks builds <storage xmlns='storage:bookmarks'/> (XEP-0048): the
// conferences from the XEP-0402 node, the rest (URLs) as last stored.
func (p *privateStorage) bookmarks(s *Session) (*Element, error) {
	out := NewElement(nsBookmarks, "storage")
	b, err := p.srv.cfg.Store.UserData(s.ctx(), s.bare.Address(), privateKey(out))
	if err == nil {
		if stored, err := parseElement(b); err == nil {
			out = stored
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	_, items, err := p.pep.svc.Items(s.ctx(), s.bare, s.bare, nsBookmarks2, nil, 0)
	if errors.Is(err, pubsub.ErrNotFound) {
		return out, nil // nothing converted yet: what was stored is all
	}
	if err != nil {
		return nil, err
	}
	out.RemoveChildren(nsBookmarks, "conference")
	for i := len(items) - 1; i >= 0; i-- { // oldest first, as they were added
		c, err := parseElement(items[i].Payload)
		if err != nil || c.Space != nsBookmarks2 {
			continue
		}
		conf := NewElement(nsBookmarks, "conference", "jid", items[i].ID)
		if n := c.Get("name"); n != "" {
			conf.Set("name", n)
		}
		if boolAttr(c.Get("autojoin")) {
			conf.Set("autojoin", "true")
		}
		for _, name := range []string{"nick", "password"} {
			if t := c.ChildText(nsBookmarks2, name); t != "" {
				conf.Add(NewElement(nsBookmarks, name).AddText(t))
			}
		}
		out.Add(conf)
	}
	return out, nil
}

// bookmarksToPEP brings the XEP-0402 node in line with a list stored
// through XEP-0049: changed and new rooms published, removed ones
// retracted, each notified; unchanged ones left alone (XEP-0402 section
// 5.3.2).
func (p *privateStorage) bookmarksToPEP(s *Session, st *Element) {
	ctx := s.ctx()
	want := make(map[string][]byte)
	var order []string
	for _, c := range st.Elements() {
		if c.Local != "conference" || c.Space != nsBookmarks {
			continue
		}
		room, err := jid.Parse(c.Get("jid"))
		if err != nil {
			continue
		}
		conf := NewElement(nsBookmarks2, "conference")
		if n := c.Get("name"); n != "" {
			conf.Set("name", n)
		}
		if boolAttr(c.Get("autojoin")) {
			conf.Set("autojoin", "true")
		}
		for _, name := range []string{"nick", "password"} {
			if t := c.ChildText(nsBookmarks, name); t != "" {
				conf.Add(NewElement(nsBookmarks2, name).AddText(t))
			}
		}
		id := room.Bare().String()
		if _, dup := want[id]; !dup {
			order = append(order, id)
		}
		want[id] = conf.Bytes("")
	}
	have := make(map[string][]byte)
	_, items, err := p.pep.svc.Items(ctx, s.bare, s.bare, nsBookmarks2, nil, 0)
	exists := err == nil
	if err != nil && !errors.Is(err, pubsub.ErrNotFound) {
		p.srv.log.Error("reading bookmarks", "user", s.bare.String(), "err", err)
		return
	}
	for _, it := range items {
		have[it.ID] = it.Payload
	}
	for _, id := range order {
		if old, ok := have[id]; ok && bytes.Equal(old, want[id]) {
			continue
		}
		req := pubsub.Publish{Node: nsBookmarks2, Item: pubsub.Item{ID: id, Payload: want[id]}}
		if !exists {
			req.Options = bookmarkOptions
		}
		res, err := p.pep.svc.Publish(ctx, s.bare, s.full, req)
		if err != nil {
			p.srv.log.Error("converting a bookmark", "user", s.bare.String(), "room", id, "err", err)
			continue
		}
		exists = true
		p.pep.notify(res.Node, p.pep.itemElement(nsPubsubEvent, res.Item, res.Node.Config.DeliverPayloads()), s.full)
	}
	for id := range have {
		if _, ok := want[id]; ok {
			continue
		}
		n, err := p.pep.svc.Retract(ctx, s.bare, s.full, nsBookmarks2, id)
		if err != nil {
			p.srv.log.Error("retracting a bookmark", "user", s.bare.String(), "room", id, "err", err)
			continue
		}
		p.pep.notify(n, NewElement(nsPubsubEvent, "retract", "id", id), s.full)
	}
}
