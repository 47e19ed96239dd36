package xmppsrv

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/muc"
	"github.com/parleyhq/parley/storage"
)

// Multi-user chat (XEP-0045) on conference.<domain>: the XML side of
// package muc. Handle turns stanzas into calls on the muc.Service; the
// service's Wire (mucWire) renders what rooms send.

const (
	nsMUC        = "http://jabber.org/protocol/muc"
	nsMUCUser    = nsMUC + "#user"
	nsMUCAdmin   = nsMUC + "#admin"
	nsMUCOwner   = nsMUC + "#owner"
	nsRoomConfig = nsMUC + "#roomconfig"
	nsRoomInfo   = nsMUC + "#roominfo"
	nsStableID   = nsMUC + "#stable_id"
	nsSelfPing   = nsMUC + "#self-ping-optimization"
	nsMUCRequest = nsMUC + "#request"

	// MUCSubdomain is the label of the multi-user chat service under each
	// served domain.
	MUCSubdomain = "conference"

	mucForwardTTL = 2 * time.Minute
)

// MUC is the multi-user chat service, a Component: register it with
// Server.Extend. Its methods are safe for concurrent use.
type MUC struct {
	srv *Server
	svc *muc.Service

	fwdMu sync.Mutex
	fwd   map[string]*forwardedIQ // iqs passed between occupants, by the id the room gave them

	ghostMu sync.Mutex
	ghosts  map[jid.JID]bool // occupants being removed for want of a session
}

// forwardedIQ is an iq the room passed from one occupant to another
// (XEP-0045 section 17.4): the answer goes back under the original id.
type forwardedIQ struct {
	id       string  // the asker's id
	asker    jid.JID // the asker's full JID
	askerOcc jid.JID // the asker's occupant JID, where the answer comes
	target   jid.JID // the full JID asked
	expires  time.Time
}

// NewMUC returns the multi-user chat service of srv. Fields of cfg left
// nil are taken from srv's Config: the Store keeps persistent rooms, the
// chat archive (when history is on) keeps room archives with ids from
// Chat.NewID, and the Directory answers for alias rooms.
func NewMUC(srv *Server, cfg muc.Config) *MUC {
	if cfg.Store == nil {
		cfg.Store = srv.cfg.Store
	}
	m := &MUC{srv: srv, fwd: make(map[string]*forwardedIQ), ghosts: make(map[jid.JID]bool)}
	if cfg.Archive == nil && srv.cfg.Chat.Archiving() {
		if a, ok := srv.cfg.Store.(storage.Archive); ok {
			cfg.Archive = a
			// The chat archive's own batching writer stores room
			// messages too.
			if cfg.Append == nil {
				cfg.Append = m.append
			}
		}
	}
	if cfg.NewID == nil {
		cfg.NewID = srv.cfg.Chat.NewID
	}
	if cfg.Directory == nil && srv.cfg.Directory != nil {
		cfg.Directory = srv.cfg.Directory
	}
	if cfg.Logger == nil {
		cfg.Logger = srv.log.With("service", "muc")
	}
	if cfg.GhostSweep <= 0 {
		cfg.GhostSweep = time.Minute
	}
	m.svc = muc.New(cfg, mucWire{m})
	go m.sweep(cfg.GhostSweep)
	return m
}

// append queues room messages from session from in the server's archiver,
// with the session's own messages: they are stored in batches, and the
// session acknowledges them (XEP-0198) only once they are.
func (m *MUC) append(from jid.JID, msgs []storage.ArchivedMessage, done func(error)) bool {
	for _, r := range m.srv.router.Resources(from.Bare().String()) {
		if r.full == from {
			return m.srv.archiver.submit(&archiveJob{sess: r, msgs: msgs, complete: done})
		}
	}
	return false
}

// Service returns the room service, for the host's own calls.
func (m *MUC) Service() *muc.Service { return m.svc }

// Subdomain is "conference".
func (m *MUC) Subdomain() string { return MUCSubdomain }

// Identity is conference/text.
func (m *MUC) Identity() (category, typ, name string) { return "conference", "text", "Chat rooms" }

// Features are what the service supports.
func (m *MUC) Features() []string {
	return []string{nsMUC, nsStableID, nsDiscoI, nsDiscoIt}
}

// Gone takes a session that ended or went unavailable out of its rooms,
// unless another session took over its full JID (a resource conflict):
// the new one stays in.
func (m *MUC) Gone(s *Session) {
	for _, r := range m.srv.router.Resources(s.bare.String()) {
		if r != s && r.full == s.full {
			return
		}
	}
	m.svc.Gone(s.ctx(), s.full)
}

// Handle handles a stanza to the service, a room or an occupant.
func (m *MUC) Handle(s *Session, el *Element, to jid.JID) {
	switch {
	case to.Local() == "":
		m.serviceStanza(s, el, to)
	case to.IsBare():
		m.roomStanza(s, el, to)
	default:
		m.occupantStanza(s, el, to)
	}
}

// isQuery reports whether el is an iq get or set.
func isQuery(el *Element) bool {
	t := el.Get("type")
	return el.Local == "iq" && (t == "get" || t == "set")
}

// fail answers el with the error err stands for, with the room as the
// error's 'by' (XEP-0045 uses it since 1.25). Presence errors carry the
// MUC extension instead of the original content (which may hold a
// password).
func (m *MUC) fail(s *Session, el *Element, room jid.JID, err error) {
	if el.Get("type") == "error" || (el.Local == "iq" && !isQuery(el)) {
		return
	}
	cond := muc.Condition(err)
	if cond == "internal-server-error" {
		m.srv.log.Error("multi-user chat", "room", room.String(), "from", s.full.String(), "err", err)
	}
	m.failCond(s, el, room, cond, muc.Text(err))
}

func (m *MUC) failCond(s *Session, el *Element, room jid.JID, cond, text string) {
	if el.Get("type") == "error" || (el.Local == "iq" && !isQuery(el)) {
		return
	}
	var e *Element
	if el.Local == "presence" {
		e = NewElement(nsClient, "presence", "type", "error", "from", el.Get("to"), "to", el.Get("from"))
		if id := el.Get("id"); id != "" {
			e.Set("id", id)
		}
		e.Add(NewElement(nsMUC, "x"), stanzaError(cond, text))
	} else {
		e = errorElement(el, cond, text)
	}
	if !room.IsZero() {
		if er := e.Child(nsClient, "error"); er != nil {
			er.Set("by", room.String())
		}
	}
	s.send(e.Bytes(nsClient))
}

// toOccupant delivers what a room sends to an occupant. When no session
// is bound at that address any more, the occupant is a ghost, removed from
// its rooms once the room is done sending (it holds the room's lock now).
func (m *MUC) toOccupant(full jid.JID, b []byte) {
	if m.deliver(full, b) || m.bound(full) || !m.srv.Local(full.Domain()) {
		return
	}
	m.ghostMu.Lock()
	if m.ghosts[full] {
		m.ghostMu.Unlock()
		return
	}
	m.ghosts[full] = true
	m.ghostMu.Unlock()
	go func() {
		m.svc.Vanished(m.srv.ctx, full)
		m.ghostMu.Lock()
		delete(m.ghosts, full)
		m.ghostMu.Unlock()
	}()
}

// bound reports whether a session is bound at full (a session waiting
// detached for resumption counts: it will get what was sent).
func (m *MUC) bound(full jid.JID) bool {
	for _, r := range m.srv.router.Resources(full.Bare().String()) {
		if r.full == full {
			return true
		}
	}
	return false
}

// sweep removes, every interval, occupants whose session is gone without
// the rooms being told, in rooms where nothing was said to reveal them.
func (m *MUC) sweep(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-m.srv.ctx.Done():
			return
		}
		for _, full := range m.svc.Sessions() {
			if m.srv.Local(full.Domain()) && !m.bound(full) {
				m.svc.Vanished(m.srv.ctx, full)
			}
		}
	}
}

// deliver queues b for the session bound to full, if any. A message for
// a session held detached for resumption also goes to push notifications
// (XEP-0357), so that the phone it belongs to wakes up.
func (m *MUC) deliver(full jid.JID, b []byte) bool {
	for _, r := range m.srv.router.Resources(full.Bare().String()) {
		if r.full == full {
			queued := r.send(b)
			if queued && m.srv.push != nil && bytes.HasPrefix(b, []byte("<message")) && r.detached() {
				if el, err := parseElement(b); err == nil {
					m.srv.notifyPush(el, full, el.Get("type"))
				}
			}
			return queued
		}
	}
	return false
}

// ---- the service itself ----

func (m *MUC) serviceStanza(s *Session, el *Element, to jid.JID) {
	if !isQuery(el) {
		if el.Local == "message" {
			m.failCond(s, el, jid.JID{}, "service-unavailable", "the chat room service takes no messages; write to a room")
		}
		return
	}
	p := el.FirstChild()
	get := el.Get("type") == "get"
	switch {
	case p == nil:
		s.send(errorReply(el, "bad-request", "an iq needs a payload"))
	case p.Space == nsDiscoI && p.Local == "query" && get && p.Get("node") == "":
		q := NewElement(nsDiscoI, "query")
		cat, typ, name := m.Identity()
		q.Add(NewElement(nsDiscoI, "identity", "category", cat, "type", typ, "name", name))
		for _, f := range m.Features() {
			q.Add(NewElement(nsDiscoI, "feature", "var", f))
		}
		s.Reply(el, q)
	case p.Space == nsDiscoIt && p.Local == "query" && get && p.Get("node") == "":
		rooms, err := m.svc.PublicRooms(s.ctx(), to.Domain(), s.bare)
		if err != nil {
			m.srv.log.Error("listing rooms", "err", err)
			s.ReplyError(el, "internal-server-error", "the rooms could not be listed; try again")
			return
		}
		q := NewElement(nsDiscoIt, "query")
		for _, r := range rooms {
			it := NewElement(nsDiscoIt, "item", "jid", r.JID.String())
			if r.Name != "" {
				it.Set("name", r.Name)
			}
			q.Add(it)
		}
		s.Reply(el, q)
	case p.Space == nsPing && p.Local == "ping":
		s.Reply(el, nil)
	default:
		s.ReplyError(el, "service-unavailable", "")
	}
}

// ---- the room's bare JID ----

func (m *MUC) roomStanza(s *Session, el *Element, room jid.JID) {
	switch el.Local {
	case "presence":
		if el.Get("type") == "" {
			m.failCond(s, el, room, "jid-malformed", "add a nickname to the room's address to enter it")
		}
	case "message":
		m.roomMessage(s, el, room)
	case "iq":
		if isQuery(el) {
			m.roomIQ(s, el, room)
		}
	}
}

func (m *MUC) roomMessage(s *Session, el *Element, room jid.JID) {
	typ := el.Get("type")
	switch typ {
	case "error":
		return
	case "groupchat":
		if el.Child(nsClient, "subject") != nil && el.Child(nsClient, "body") == nil && el.Child(nsClient, "thread") == nil {
			err := m.svc.SetSubject(s.ctx(), room, s.full, el.ChildText(nsClient, "subject"), el.Get("id"))
			if err != nil {
				m.fail(s, el, room, err)
			}
			return
		}
		m.speak(s, el, room)
		return
	}
	if x := el.Child(nsXData, "x"); x != nil && x.Get("type") == "submit" {
		if v := formValues(x); len(v["FORM_TYPE"]) > 0 && v["FORM_TYPE"][0] == nsMUCRequest {
			m.voiceRequest(s, el, room, v)
			return
		}
	}
	if x := el.Child(nsMUCUser, "x"); x != nil {
		handled := false
		for _, c := range x.Elements() {
			switch c.Local {
			case "invite":
				handled = true
				if !m.invite(s, el, room, c, x) {
					return
				}
			case "decline":
				handled = true
				m.decline(s, el, room, c)
			}
		}
		if handled {
			return
		}
	}
	m.failCond(s, el, room, "bad-request", "messages to a room are of type groupchat")
}

// speak reflects a groupchat message to the room (XEP-0045 7.4), archived
// first, with the room's stanza-id (XEP-0359) and the sender's id kept.
func (m *MUC) speak(s *Session, el *Element, room jid.JID) {
	body := el.Child(nsClient, "body")
	err := m.svc.Speak(s.ctx(), room, s.full, func(nick, id string) muc.Said {
		out := &Element{Space: nsClient, Local: "message"}
		out.Set("from", room.WithResource(nick).String())
		out.Set("type", "groupchat")
		if v := el.Get("id"); v != "" {
			out.Set("id", v)
		}
		for _, a := range el.Attr {
			if a.Name.Space == nsXML {
				out.Attr = append(out.Attr, a)
			}
		}
		for _, n := range el.Children {
			if n.El != nil && ((n.El.Space == nsSID && n.El.Local == "stanza-id") || n.El.Space == nsMUCUser) {
				continue // only the room may claim these
			}
			out.Children = append(out.Children, n)
		}
		said := muc.Said{ClientID: clientID(el), Failed: func(error) {
			m.failCond(s, el, room, "internal-server-error", "the message could not be stored; send it again")
		}}
		if id != "" {
			out.Add(stanzaID(id, room))
		}
		said.Data = out.Bytes(nsClient)
		if body != nil {
			said.Body = body.Text()
			arch := out.ShallowCopy()
			arch.Children = append(slices.Clone(out.Children), Node{El: NewElement(nsMUCUser, "x").Add(
				NewElement(nsMUCUser, "item", "jid", s.full.String()))})
			said.Archived = arch.Bytes(nsClient)
		}
		return said
	})
	if err != nil {
		if errors.Is(err, muc.ErrNotOccupant) || errors.Is(err, muc.ErrForbidden) || errors.Is(err, muc.ErrNotFound) {
			m.fail(s, el, room, err)
			return
		}
		m.srv.log.Error("room message", "room", room.String(), "err", err)
		m.failCond(s, el, room, "internal-server-error", "the message could not be stored; send it again")
	}
}

// voiceRequest handles the muc#request form (XEP-0045 7.13 and 8.6): a
// visitor's request for voice goes to the moderators as an approval form,
// and a moderator's approval grants it.
func (m *MUC) voiceRequest(s *Session, el *Element, room jid.JID, v map[string][]string) {
	first := func(k string) string {
		if len(v[k]) > 0 {
			return strings.TrimSpace(v[k][0])
		}
		return ""
	}
	if _, approval := v["muc#request_allow"]; approval {
		allow, _ := parseBool(first("muc#request_allow"))
		nick := first("muc#roomnick")
		if !allow || nick == "" {
			return // a refusal, or nothing to act on: no answer is defined
		}
		err := m.svc.SetRoles(s.ctx(), room, s.full, []muc.RoleChange{{Nick: nick, Role: muc.Participant}}, nil)
		if err != nil {
			m.fail(s, el, room, err)
		}
		return
	}
	if role := first("muc#role"); role != "" && role != "participant" {
		m.failCond(s, el, room, "bad-request", "only voice (the participant role) can be requested")
		return
	}
	nick, mods, err := m.svc.VoiceRequest(s.ctx(), room, s.full)
	if err != nil {
		m.fail(s, el, room, err)
		return
	}
	for _, to := range mods {
		f := newForm("form", nsMUCRequest)
		f.head("instructions", "To give "+nick+" voice, check the box and submit.")
		f.head("title", "Voice request")
		f.field("muc#role", "list-single", "Requested role", "participant")
		f.field("muc#jid", "jid-single", "User ID", s.full.String())
		f.field("muc#roomnick", "text-single", "Room nickname", nick)
		f.field("muc#request_allow", "boolean", "Grant voice to this person?", "0")
		out := NewElement(nsClient, "message", "from", room.String(), "to", to.String(), "id", randomID(8)).Add(f.x)
		m.deliver(to, out.Bytes(nsClient))
	}
}

// invite passes a mediated invitation on (XEP-0045 7.8.2). It reports
// false when it answered with an error.
func (m *MUC) invite(s *Session, el *Element, room jid.JID, inv, x *Element) bool {
	invitee, err := jid.Parse(inv.Get("to"))
	if err != nil || invitee.Local() == "" {
		m.failCond(s, el, room, "jid-malformed", "the invitation needs a 'to' address of a user")
		return false
	}
	target, err := m.srv.cfg.Chat.Resolve(s.ctx(), invitee.Bare())
	switch {
	case errors.Is(err, chat.ErrRemote):
		m.failCond(s, el, room, "remote-server-not-found", "rooms here are open to users of this server only; "+invitee.Domain()+" is another server")
		return false
	case err != nil || target.Kind != chat.ToUser:
		m.failCond(s, el, room, "item-not-found", "there is no user "+invitee.Bare().String())
		return false
	}
	password, err := m.svc.Invite(s.ctx(), room, s.full, invitee)
	if err != nil {
		m.fail(s, el, room, err)
		return false
	}
	out := NewElement(nsClient, "message", "from", room.String(), "to", invitee.String())
	if id := el.Get("id"); id != "" {
		out.Set("id", id)
	}
	ux := NewElement(nsMUCUser, "x")
	fwd := NewElement(nsMUCUser, "invite", "from", s.full.String())
	for _, c := range inv.Elements() {
		if c.Space == nsMUCUser && (c.Local == "reason" || c.Local == "continue") {
			fwd.Add(c)
		}
	}
	ux.Add(fwd)
	if password != "" {
		ux.Add(NewElement(nsMUCUser, "password").AddText(password))
	}
	out.Add(ux)
	b := out.Bytes(nsClient)
	if invitee.IsBare() {
		if !m.srv.DeliverTo(invitee, out) {
			// Kept for the invitee's next login, like any message.
			if err := m.srv.cfg.Chat.StoreOffline(s.ctx(), invitee, time.Now(), b); err != nil {
				m.srv.log.Warn("storing an invitation", "to", invitee.String(), "err", err)
			}
		}
	} else if !m.deliver(invitee, b) {
		m.srv.DeliverTo(invitee.Bare(), out)
	}
	return true
}

// decline passes a declined invitation back to the inviter.
func (m *MUC) decline(s *Session, el *Element, room jid.JID, d *Element) {
	inviter, err := jid.Parse(d.Get("to"))
	if err != nil || !m.svc.Exists(s.ctx(), room, s.full) {
		m.failCond(s, el, room, "item-not-found", "")
		return
	}
	out := NewElement(nsClient, "message", "from", room.String(), "to", inviter.String())
	if id := el.Get("id"); id != "" {
		out.Set("id", id)
	}
	fwd := NewElement(nsMUCUser, "decline", "from", s.bare.String())
	if r := d.Child(nsMUCUser, "reason"); r != nil {
		fwd.Add(r)
	}
	out.Add(NewElement(nsMUCUser, "x").Add(fwd))
	if inviter.IsBare() || !m.deliver(inviter, out.Bytes(nsClient)) {
		m.srv.DeliverTo(inviter.Bare(), out)
	}
}

func (m *MUC) roomIQ(s *Session, el *Element, room jid.JID) {
	p := el.FirstChild()
	if p == nil {
		s.ReplyError(el, "bad-request", "an iq needs a payload")
		return
	}
	get := el.Get("type") == "get"
	switch {
	case p.Space == nsDiscoI && p.Local == "query" && get:
		m.roomDisco(s, el, p, room)
	case p.Space == nsDiscoIt && p.Local == "query" && get:
		// Occupants are not listed: who is in a room is for its occupants.
		if !m.svc.Exists(s.ctx(), room, s.full) {
			m.failCond(s, el, room, "item-not-found", "no such room")
			return
		}
		q := NewElement(nsDiscoIt, "query")
		if n := p.Get("node"); n != "" {
			q.Set("node", n)
		}
		s.Reply(el, q)
	case p.Space == nsMUCAdmin && p.Local == "query":
		m.adminIQ(s, el, p, room, get)
	case p.Space == nsMUCOwner && p.Local == "query":
		m.ownerIQ(s, el, p, room, get)
	case p.Space == nsMAM && p.Local == "query":
		m.roomMAM(s, el, p, room, get)
	case p.Space == nsRegister && p.Local == "query":
		m.registerIQ(s, el, p, room, get)
	case p.Space == nsPing && p.Local == "ping":
		if !m.svc.Exists(s.ctx(), room, s.full) {
			m.failCond(s, el, room, "item-not-found", "no such room")
			return
		}
		s.Reply(el, nil)
	default:
		m.failCond(s, el, room, "service-unavailable", "")
	}
}

const nsMUCRegister = nsMUC + "#register"

// registerIQ is registration with a room (XEP-0045 7.10): a get returns
// the form, or <registered/> with the reserved nickname; a submitted form
// reserves muc#register_roomnick and makes the user a member; <remove/>
// cancels the registration.
func (m *MUC) registerIQ(s *Session, el, q *Element, room jid.JID, get bool) {
	ctx := s.ctx()
	if get {
		nick, registered, err := m.svc.Registration(ctx, room, s.full)
		if err != nil {
			m.fail(s, el, room, err)
			return
		}
		out := NewElement(nsRegister, "query")
		if registered {
			out.Add(NewElement(nsRegister, "registered"))
			if nick != "" {
				out.Add(NewElement(nsRegister, "username").AddText(nick))
			}
			s.Reply(el, out)
			return
		}
		form := newForm("form", nsMUCRegister)
		form.head("title", "Register with "+room.String())
		form.field("muc#register_roomnick", "text-single", "Desired nickname", nick).Add(NewElement(nsXData, "required"))
		out.Add(NewElement(nsRegister, "instructions").AddText("Choose the nickname to reserve in this room; you become a member."))
		out.Add(form.x)
		s.Reply(el, out)
		return
	}
	if q.Child(nsRegister, "remove") != nil {
		if err := m.svc.Unregister(ctx, room, s.full); err != nil {
			m.fail(s, el, room, err)
			return
		}
		s.Reply(el, nil)
		return
	}
	x := q.Child(nsXData, "x")
	if x == nil || (x.Get("type") != "submit" && x.Get("type") != "cancel") {
		m.failCond(s, el, room, "bad-request", "submit the "+nsMUCRegister+" form")
		return
	}
	if x.Get("type") == "cancel" {
		s.Reply(el, nil)
		return
	}
	v := formValues(x)
	if ft := v["FORM_TYPE"]; len(ft) != 1 || ft[0] != nsMUCRegister {
		m.failCond(s, el, room, "bad-request", "the form's FORM_TYPE must be "+nsMUCRegister)
		return
	}
	nick := ""
	if n := v["muc#register_roomnick"]; len(n) == 1 {
		nick = n[0]
	}
	if strings.TrimSpace(nick) == "" {
		m.failCond(s, el, room, "not-acceptable", "muc#register_roomnick is required")
		return
	}
	if err := m.svc.Register(ctx, room, s.full, nick); err != nil {
		m.fail(s, el, room, err)
		return
	}
	s.Reply(el, nil)
}

// roomFeatures are the disco#info features of a room (XEP-0045 6.4 and
// 15.3).
func roomFeatures(in muc.Info) []string {
	f := []string{nsMUC, nsStableID, nsSelfPing, nsDiscoI, nsDiscoIt, nsSID, nsRegister}
	pick := func(b bool, yes, no string) {
		if b {
			f = append(f, yes)
		} else {
			f = append(f, no)
		}
	}
	pick(in.Config.Public, "muc_public", "muc_hidden")
	pick(in.Config.Persistent, "muc_persistent", "muc_temporary")
	pick(in.Config.MembersOnly, "muc_membersonly", "muc_open")
	pick(in.Config.Moderated, "muc_moderated", "muc_unmoderated")
	pick(in.Config.NonAnonymous(), "muc_nonanonymous", "muc_semianonymous")
	pick(in.PasswordProtected, "muc_passwordprotected", "muc_unsecured")
	if in.Archived {
		f = append(f, nsMAM)
	}
	return f
}

func (m *MUC) roomDisco(s *Session, el, p *Element, room jid.JID) {
	in, err := m.svc.Info(s.ctx(), room, s.full)
	if err != nil {
		m.fail(s, el, room, err)
		return
	}
	q := NewElement(nsDiscoI, "query")
	switch node := p.Get("node"); node {
	case "x-roomuser-item":
		q.Set("node", node)
		if in.Nick != "" {
			q.Add(NewElement(nsDiscoI, "identity", "category", "conference", "type", "text", "name", in.Nick))
		}
		s.Reply(el, q)
		return
	case "":
	default:
		m.failCond(s, el, room, "item-not-found", "no such node")
		return
	}
	name := in.Config.Name
	if name == "" {
		name = room.Local()
	}
	q.Add(NewElement(nsDiscoI, "identity", "category", "conference", "type", "text", "name", name))
	for _, f := range roomFeatures(in) {
		q.Add(NewElement(nsDiscoI, "feature", "var", f))
	}
	form := newForm("result", nsRoomInfo)
	form.field("muc#roominfo_description", "text-single", "Description", in.Config.Description)
	form.field("muc#roominfo_subject", "text-single", "Current discussion topic", in.Subject)
	form.field("muc#roominfo_occupants", "text-single", "Number of occupants", strconv.Itoa(in.Occupants))
	form.field("muc#roomconfig_roomname", "text-single", "Name", in.Config.Name)
	if in.Config.Language != "" {
		form.field("muc#roominfo_lang", "text-single", "Language of discussion", in.Config.Language)
	}
	form.field("muc#maxhistoryfetch", "text-single", "Maximum number of history messages returned by the room", strconv.Itoa(in.Config.MaxHistory))
	form.field("muc#roomconfig_changesubject", "boolean", "Occupants may change the subject", boolValue(in.Config.ChangeSubject))
	form.field("muc#roomconfig_allowinvites", "boolean", "Members may invite others", boolValue(in.Config.AllowInvites))
	form.field("muc#roomconfig_allowpm", "list-single", "Who may send private messages", in.Config.AllowPM.String())
	if len(in.Owners) > 0 {
		var owners []string
		for _, o := range in.Owners {
			owners = append(owners, o.String())
		}
		form.field("muc#roominfo_contactjid", "jid-multi", "Contact addresses", owners...)
	}
	q.Add(form.x)
	s.Reply(el, q)
}

// ---- data forms ----

type dataForm struct{ x *Element }

func newForm(typ, formType string) *dataForm {
	f := &dataForm{x: NewElement(nsXData, "x", "type", typ)}
	f.x.Add(NewElement(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").Add(NewElement(nsXData, "value").AddText(formType)))
	return f
}

// head puts a title or instructions before the fields (XEP-0004's
// schema orders them first).
func (f *dataForm) head(local, text string) {
	f.x.Children = append([]Node{{El: NewElement(nsXData, local).AddText(text)}}, f.x.Children...)
}

func (f *dataForm) field(v, typ, label string, values ...string) *Element {
	fl := NewElement(nsXData, "field", "var", v, "type", typ)
	if label != "" {
		fl.Set("label", label)
	}
	for _, val := range values {
		fl.Add(NewElement(nsXData, "value").AddText(val))
	}
	f.x.Add(fl)
	return fl
}

func (f *dataForm) options(fl *Element, opts ...string) {
	for _, o := range opts {
		fl.Add(NewElement(nsXData, "option", "label", o).Add(NewElement(nsXData, "value").AddText(o)))
	}
}

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// formValues reads a submitted form: var -> values.
func formValues(x *Element) map[string][]string {
	out := make(map[string][]string)
	for _, f := range x.Elements() {
		if f.Local != "field" || f.Get("var") == "" {
			continue
		}
		var vals []string
		for _, v := range f.Elements() {
			if v.Local == "value" {
				vals = append(vals, v.Text())
			}
		}
		out[f.Get("var")] = vals
	}
	return out
}

func parseBool(s string) (bool, bool) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// ---- muc#admin ----

func (m *MUC) adminIQ(s *Session, el, q *Element, room jid.JID, get bool) {
	var items []*Element
	for _, c := range q.Elements() {
		if c.Space == nsMUCAdmin && c.Local == "item" {
			items = append(items, c)
		}
	}
	if len(items) == 0 {
		m.failCond(s, el, room, "bad-request", "the query needs an item")
		return
	}
	if get {
		m.adminList(s, el, room, items[0])
		return
	}
	var roles []muc.RoleChange
	var affs []muc.AffiliationChange
	for _, it := range items {
		reason := it.ChildText(nsMUCAdmin, "reason")
		switch {
		case it.Has("role") && it.Has("affiliation"):
			m.failCond(s, el, room, "bad-request", "an item changes a role or an affiliation, not both")
			return
		case it.Has("role"):
			r, ok := muc.ParseRole(it.Get("role"))
			if !ok || it.Get("nick") == "" {
				m.failCond(s, el, room, "bad-request", "a role change needs a known role and a nick")
				return
			}
			roles = append(roles, muc.RoleChange{Nick: it.Get("nick"), Role: r, Reason: reason})
		case it.Has("affiliation"):
			a, ok := muc.ParseAffiliation(it.Get("affiliation"))
			if !ok {
				m.failCond(s, el, room, "bad-request", "unknown affiliation "+strconv.Quote(it.Get("affiliation")))
				return
			}
			c := muc.AffiliationChange{Affiliation: a, Reason: reason}
			if v := it.Get("jid"); v != "" {
				j, err := jid.Parse(v)
				if err != nil {
					m.failCond(s, el, room, "jid-malformed", err.Error())
					return
				}
				c.JID = j.Bare()
			} else if nick := it.Get("nick"); nick != "" {
				j, ok := m.svc.OccupantJID(room, nick)
				if !ok {
					m.failCond(s, el, room, "item-not-found", "no occupant is called "+nick)
					return
				}
				c.JID = j.Bare()
			} else {
				m.failCond(s, el, room, "bad-request", "an affiliation change needs a jid")
				return
			}
			if it.Has("nick") && it.Has("jid") {
				c.Nick, c.SetNick = it.Get("nick"), true
			}
			affs = append(affs, c)
		default:
			m.failCond(s, el, room, "bad-request", "an item needs a role or an affiliation")
			return
		}
	}
	if len(roles) > 0 && len(affs) > 0 {
		m.failCond(s, el, room, "bad-request", "change roles and affiliations in separate requests")
		return
	}
	ack := func() { s.Reply(el, nil) }
	var err error
	if len(roles) > 0 {
		err = m.svc.SetRoles(s.ctx(), room, s.full, roles, ack)
	} else {
		err = m.svc.SetAffiliations(s.ctx(), room, s.full, affs, ack)
	}
	if err != nil {
		m.fail(s, el, room, err)
	}
}

func (m *MUC) adminList(s *Session, el *Element, room jid.JID, it *Element) {
	var list []muc.Item
	var err error
	switch {
	case it.Has("affiliation"):
		a, ok := muc.ParseAffiliation(it.Get("affiliation"))
		if !ok || a == muc.AffiliationNone {
			m.failCond(s, el, room, "bad-request", "ask for the owner, admin, member or outcast list")
			return
		}
		list, err = m.svc.List(s.ctx(), room, s.full, a)
	case it.Has("role"):
		r, ok := muc.ParseRole(it.Get("role"))
		if !ok || r == muc.RoleNone {
			m.failCond(s, el, room, "bad-request", "ask for the moderator, participant or visitor list")
			return
		}
		list, err = m.svc.ListRole(s.ctx(), room, s.full, r)
	default:
		m.failCond(s, el, room, "bad-request", "the item needs a role or an affiliation")
		return
	}
	if err != nil {
		m.fail(s, el, room, err)
		return
	}
	q := NewElement(nsMUCAdmin, "query")
	for _, x := range list {
		item := NewElement(nsMUCAdmin, "item", "affiliation", x.Affiliation.String(), "jid", x.JID.String())
		if x.Nick != "" {
			item.Set("nick", x.Nick)
		}
		if it.Has("role") {
			item.Set("role", x.Role.String())
		}
		if x.Reason != "" {
			item.Add(NewElement(nsMUCAdmin, "reason").AddText(x.Reason))
		}
		q.Add(item)
	}
	s.Reply(el, q)
}

// ---- muc#owner ----

var maxUsersOptions = []string{"10", "20", "30", "50", "100", "none"}

func (m *MUC) ownerIQ(s *Session, el, q *Element, room jid.JID, get bool) {
	if get {
		cfg, owners, admins, err := m.svc.Configuration(s.ctx(), room, s.full)
		if err != nil {
			m.fail(s, el, room, err)
			return
		}
		s.Reply(el, NewElement(nsMUCOwner, "query").Add(m.configForm(room, cfg, owners, admins)))
		return
	}
	if d := q.Child(nsMUCOwner, "destroy"); d != nil {
		var dst muc.Destroy
		if v := d.Get("jid"); v != "" {
			j, err := jid.Parse(v)
			if err != nil {
				m.failCond(s, el, room, "jid-malformed", err.Error())
				return
			}
			dst.Venue = j
		}
		dst.Reason = d.ChildText(nsMUCOwner, "reason")
		dst.Password = d.ChildText(nsMUCOwner, "password")
		if err := m.svc.Destroy(s.ctx(), room, s.full, dst, func() { s.Reply(el, nil) }); err != nil {
			m.fail(s, el, room, err)
		}
		return
	}
	x := q.Child(nsXData, "x")
	if x == nil {
		m.failCond(s, el, room, "bad-request", "submit the configuration form, or destroy the room")
		return
	}
	switch x.Get("type") {
	case "cancel":
		if err := m.svc.CancelConfig(s.ctx(), room, s.full); err != nil {
			m.fail(s, el, room, err)
			return
		}
		s.Reply(el, nil)
		return
	case "submit":
	default:
		m.failCond(s, el, room, "bad-request", "the form must be of type submit or cancel")
		return
	}
	cfg, owners, admins, err := m.svc.Configuration(s.ctx(), room, s.full)
	if err != nil {
		m.fail(s, el, room, err)
		return
	}
	owners, admins, err = applyConfigForm(&cfg, formValues(x), owners, admins)
	if err != nil {
		m.failCond(s, el, room, "not-acceptable", err.Error())
		return
	}
	if err := m.svc.Configure(s.ctx(), room, s.full, cfg, owners, admins, func() { s.Reply(el, nil) }); err != nil {
		m.fail(s, el, room, err)
	}
}

// configForm is the muc#roomconfig form with the room's current values
// (XEP-0045 10.2).
func (m *MUC) configForm(room jid.JID, c muc.RoomConfig, owners, admins []jid.JID) *Element {
	f := newForm("form", nsRoomConfig)
	f.head("title", "Configuration of "+room.String())
	f.field("muc#roomconfig_roomname", "text-single", "Name", c.Name)
	f.field("muc#roomconfig_roomdesc", "text-single", "Description", c.Description)
	f.field("muc#roomconfig_lang", "text-single", "Language of discussion", c.Language)
	f.field("muc#roomconfig_persistentroom", "boolean", "Keep the room when the last occupant leaves", boolValue(c.Persistent))
	f.field("muc#roomconfig_publicroom", "boolean", "List the room in the directory", boolValue(c.Public))
	f.field("muc#roomconfig_membersonly", "boolean", "Members only", boolValue(c.MembersOnly))
	f.field("muc#roomconfig_moderatedroom", "boolean", "Moderated: only participants with voice may speak", boolValue(c.Moderated))
	f.field("muc#roomconfig_passwordprotectedroom", "boolean", "A password is required to enter", boolValue(c.Password != ""))
	f.field("muc#roomconfig_roomsecret", "text-private", "Password", c.Password)
	whois := f.field("muc#roomconfig_whois", "list-single", "Who may see real addresses", c.WhoIs.String())
	f.options(whois, "moderators", "anyone")
	maxUsers := "none"
	if c.MaxUsers > 0 {
		maxUsers = strconv.Itoa(c.MaxUsers)
	}
	mu := f.field("muc#roomconfig_maxusers", "list-single", "Maximum number of occupants", maxUsers)
	f.options(mu, maxUsersOptions...)
	f.field("muc#roomconfig_changesubject", "boolean", "Occupants may change the subject", boolValue(c.ChangeSubject))
	f.field("muc#roomconfig_allowinvites", "boolean", "Members may invite others", boolValue(c.AllowInvites))
	pm := f.field("muc#roomconfig_allowpm", "list-single", "Who may send private messages", c.AllowPM.String())
	f.options(pm, "anyone", "participants", "moderators", "none")
	roles := func(rs muc.Roles) []string {
		var out []string
		for _, r := range rs.List() {
			out = append(out, r.String())
		}
		return out
	}
	pb := f.field("muc#roomconfig_presencebroadcast", "list-multi", "Roles whose presence is broadcast", roles(c.Broadcast)...)
	f.options(pb, "moderator", "participant", "visitor")
	gm := f.field("muc#roomconfig_getmemberlist", "list-multi", "Roles that may read the member list", roles(c.MemberList)...)
	f.options(gm, "moderator", "participant", "visitor")
	f.field("muc#maxhistoryfetch", "text-single", "Messages of history sent on entering", strconv.Itoa(c.MaxHistory))
	if m.svc.Archiving() {
		f.field("muc#roomconfig_enablearchiving", "boolean", "Archive messages (XEP-0313)", boolValue(c.Archive))
	}
	jids := func(js []jid.JID) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.String())
		}
		return out
	}
	f.field("muc#roomconfig_roomadmins", "jid-multi", "Admins", jids(admins)...)
	f.field("muc#roomconfig_roomowners", "jid-multi", "Owners", jids(owners)...)
	return f.x
}

// applyConfigForm changes c by a submitted muc#roomconfig form; fields
// left out keep their values. It returns the new owner and admin lists
// (nil when the form does not set them).
func applyConfigForm(c *muc.RoomConfig, v map[string][]string, owners, admins []jid.JID) ([]jid.JID, []jid.JID, error) {
	one := func(k string) (string, bool) {
		vals, ok := v[k]
		if !ok {
			return "", false
		}
		if len(vals) == 0 {
			return "", true
		}
		return vals[0], true
	}
	if ft, ok := one("FORM_TYPE"); ok && ft != nsRoomConfig {
		return nil, nil, errors.New("FORM_TYPE must be " + nsRoomConfig)
	}
	text := map[string]*string{
		"muc#roomconfig_roomname": &c.Name,
		"muc#roomconfig_roomdesc": &c.Description,
		"muc#roomconfig_lang":     &c.Language,
	}
	for k, p := range text {
		if s, ok := one(k); ok {
			*p = s
		}
	}
	bools := map[string]*bool{
		"muc#roomconfig_persistentroom":  &c.Persistent,
		"muc#roomconfig_publicroom":      &c.Public,
		"muc#roomconfig_membersonly":     &c.MembersOnly,
		"muc#roomconfig_moderatedroom":   &c.Moderated,
		"muc#roomconfig_changesubject":   &c.ChangeSubject,
		"muc#roomconfig_allowinvites":    &c.AllowInvites,
		"muc#roomconfig_enablearchiving": &c.Archive,
	}
	for k, p := range bools {
		if s, ok := one(k); ok {
			b, valid := parseBool(s)
			if !valid {
				return nil, nil, errors.New(k + " must be a boolean")
			}
			*p = b
		}
	}
	protected := c.Password != ""
	if s, ok := one("muc#roomconfig_passwordprotectedroom"); ok {
		b, valid := parseBool(s)
		if !valid {
			return nil, nil, errors.New("muc#roomconfig_passwordprotectedroom must be a boolean")
		}
		protected = b
	}
	if s, ok := one("muc#roomconfig_roomsecret"); ok {
		c.Password = s
		if _, set := v["muc#roomconfig_passwordprotectedroom"]; !set {
			protected = s != ""
		}
	}
	if !protected {
		c.Password = ""
	} else if c.Password == "" {
		return nil, nil, errors.New("a password-protected room needs a password")
	}
	if s, ok := one("muc#roomconfig_whois"); ok {
		switch s {
		case "moderators":
			c.WhoIs = muc.WhoIsModerators
		case "anyone":
			c.WhoIs = muc.WhoIsAnyone
		default:
			return nil, nil, errors.New("muc#roomconfig_whois must be moderators or anyone")
		}
	}
	if s, ok := one("muc#roomconfig_allowpm"); ok {
		p, valid := muc.ParsePMPolicy(s)
		if !valid {
			return nil, nil, errors.New("muc#roomconfig_allowpm must be anyone, participants, moderators or none")
		}
		c.AllowPM = p
	}
	if s, ok := one("muc#roomconfig_maxusers"); ok {
		if s == "none" || s == "" || s == "0" {
			c.MaxUsers = 0
		} else if n, err := strconv.Atoi(s); err == nil && n > 0 {
			c.MaxUsers = n
		} else {
			return nil, nil, errors.New("muc#roomconfig_maxusers must be a number or none")
		}
	}
	if s, ok := one("muc#maxhistoryfetch"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return nil, nil, errors.New("muc#maxhistoryfetch must be a number")
		}
		c.MaxHistory = n
	}
	for k, p := range map[string]*muc.Roles{"muc#roomconfig_presencebroadcast": &c.Broadcast, "muc#roomconfig_getmemberlist": &c.MemberList} {
		vals, ok := v[k]
		if !ok {
			continue
		}
		var rs muc.Roles
		for _, s := range vals {
			r, valid := muc.ParseRole(s)
			if !valid || r == muc.RoleNone {
				return nil, nil, errors.New(k + ": unknown role " + strconv.Quote(s))
			}
			rs = rs.With(r)
		}
		*p = rs
	}
	lists := func(k string) ([]jid.JID, error) {
		vals, ok := v[k]
		if !ok {
			return nil, nil
		}
		out := []jid.JID{}
		for _, s := range vals {
			if strings.TrimSpace(s) == "" {
				continue
			}
			j, err := jid.Parse(strings.TrimSpace(s))
			if err != nil || j.Local() == "" {
				return nil, errors.New(k + ": " + strconv.Quote(s) + " is not a user's address")
			}
			out = append(out, j.Bare())
		}
		return out, nil
	}
	newOwners, err := lists("muc#roomconfig_roomowners")
	if err != nil {
		return nil, nil, err
	}
	newAdmins, err := lists("muc#roomconfig_roomadmins")
	if err != nil {
		return nil, nil, err
	}
	// A list equal to the current one is no change.
	if newOwners != nil && slices.Equal(newOwners, owners) {
		newOwners = nil
	}
	if newAdmins != nil && slices.Equal(newAdmins, admins) {
		newAdmins = nil
	}
	return newOwners, newAdmins, nil
}

// ---- the room archive (XEP-0313 section 4.1.2 and business rules) ----

func (m *MUC) roomMAM(s *Session, el, p *Element, room jid.JID, get bool) {
	if get {
		if !m.svc.Exists(s.ctx(), room, s.full) {
			m.failCond(s, el, room, "item-not-found", "no such room")
			return
		}
		form := newForm("form", nsMAM)
		for _, f := range []string{"start", "end", "before-id", "after-id", fulltextField} {
			form.field(f, "text-single", "")
		}
		s.Reply(el, NewElement(nsMAM, "query").Add(form.x))
		return
	}
	q, with, cond, text := parseArchiveQuery(p)
	if cond != "" {
		m.failCond(s, el, room, cond, text)
		return
	}
	if with != "" {
		// A room's archive has one correspondent, the room.
		if w, err := jid.Parse(with); err != nil || w.Bare() != room {
			m.failCond(s, el, room, "bad-request", "a room's archive cannot be filtered by 'with'")
			return
		}
	}
	if q.Max == 0 {
		s.Reply(el, NewElement(nsMAM, "fin").Add(NewElement(nsRSM, "set")))
		return
	}
	msgs, complete, showJIDs, err := m.svc.Query(s.ctx(), room, s.full, q)
	if err != nil {
		m.fail(s, el, room, err)
		return
	}
	qid := p.Get("queryid")
	for _, a := range msgs {
		orig, err := parseElement(a.Data)
		if err != nil {
			m.srv.log.Error("archived room message does not parse", "room", room.String(), "id", a.ID, "err", err)
			continue
		}
		if !showJIDs {
			orig.RemoveChildren(nsMUCUser, "x")
		}
		res := NewElement(nsMAM, "result", "id", a.ID)
		if qid != "" {
			res.Set("queryid", qid)
		}
		res.Add(NewElement(nsForward, "forwarded").Add(
			NewElement(nsDelay, "delay", "stamp", a.Stamp.UTC().Format("2006-01-02T15:04:05.000000Z")),
			orig))
		wrapper := NewElement(nsClient, "message", "from", room.String(), "to", s.full.String()).Add(res)
		if !s.sendWait(wrapper.Bytes(nsClient)) {
			return
		}
	}
	fin := NewElement(nsMAM, "fin")
	if complete {
		fin.Set("complete", "true")
	}
	set := NewElement(nsRSM, "set")
	if len(msgs) > 0 {
		set.Add(NewElement(nsRSM, "first").AddText(msgs[0].ID), NewElement(nsRSM, "last").AddText(msgs[len(msgs)-1].ID))
	}
	s.sendWait(iqResult(el, fin.Add(set)).Bytes(nsClient))
}

// ---- occupant JIDs ----

func (m *MUC) occupantStanza(s *Session, el *Element, to jid.JID) {
	room := to.Bare()
	switch el.Local {
	case "presence":
		m.occupantPresence(s, el, to, room)
	case "message":
		switch el.Get("type") {
		case "error":
			return
		case "groupchat":
			m.failCond(s, el, room, "bad-request", "a private message cannot be of type groupchat")
			return
		}
		fromNick, sessions, err := m.svc.Private(s.ctx(), room, s.full, to.Resource())
		if err != nil {
			m.fail(s, el, room, err)
			return
		}
		out := el.ShallowCopy()
		out.Set("from", room.WithResource(fromNick).String())
		if el.Child(nsMUCUser, "x") == nil {
			out.Children = append(slices.Clone(el.Children), Node{El: NewElement(nsMUCUser, "x")})
		}
		for _, full := range sessions {
			out.Set("to", full.String())
			m.deliver(full, out.Bytes(nsClient))
		}
		// The sender's other clients see what it sent (XEP-0280 section
		// 6 carbons private messages that carry the muc#user element).
		sent := el
		if el.Child(nsMUCUser, "x") == nil {
			sent = el.ShallowCopy()
			sent.Children = append(slices.Clone(el.Children), Node{El: NewElement(nsMUCUser, "x")})
		}
		m.srv.carbonCopies(s, el, just(sent), just(out), room, el.Get("type"), nil)
	case "iq":
		m.occupantIQ(s, el, to, room)
	}
}

// presencePayload is what of a client's presence the room reflects: all
// but the MUC extensions, which only the room may generate.
func presencePayload(el *Element) []byte {
	var b bytes.Buffer
	for _, n := range el.Children {
		if n.El == nil {
			continue
		}
		if n.El.Space == nsMUC || n.El.Space == nsMUCUser {
			continue
		}
		n.El.write(&b, nsClient)
	}
	return b.Bytes()
}

func (m *MUC) occupantPresence(s *Session, el *Element, to, room jid.JID) {
	switch el.Get("type") {
	case "":
	case "unavailable":
		m.svc.Exit(s.ctx(), room, s.full, presencePayload(el))
		return
	default:
		return // probes, subscriptions: not for rooms
	}
	e := muc.Entry{Room: room, Nick: to.Resource(), From: s.full, Payload: presencePayload(el), ID: el.Get("id"), History: muc.NoHistoryLimit}
	if x := el.Child(nsMUC, "x"); x != nil {
		e.MUC = true
		e.Password = x.ChildText(nsMUC, "password")
		if h := x.Child(nsMUC, "history"); h != nil {
			var ok bool
			if e.History, ok = historyLimit(h); !ok {
				m.failCond(s, el, room, "bad-request", "history limits must be non-negative numbers and since an XEP-0082 date-time")
				return
			}
		}
	}
	if x := el.Child(nsMUCUser, "x"); x != nil && e.Password == "" {
		e.Password = x.ChildText(nsMUCUser, "password")
	}
	err := m.svc.Enter(s.ctx(), e)
	switch {
	case err == nil:
	case errors.Is(err, muc.ErrNotJoined):
		// A presence update from outside the room (XEP-0045 7.2.1): the
		// client lost track, and learns it is not in.
		x := NewElement(nsMUCUser, "x").Add(
			NewElement(nsMUCUser, "item", "affiliation", "none", "role", "none").Add(
				NewElement(nsMUCUser, "reason").AddText("You are not in the room.")),
			NewElement(nsMUCUser, "status", "code", "110"),
			NewElement(nsMUCUser, "status", "code", "307"),
			NewElement(nsMUCUser, "status", "code", "333"))
		s.send(NewElement(nsClient, "presence", "from", to.String(), "to", s.full.String(), "type", "unavailable").Add(x).Bytes(nsClient))
	default:
		m.fail(s, el, room, err)
	}
}

// historyLimit reads <history/> (XEP-0045 7.2.15).
func historyLimit(h *Element) (muc.HistoryLimit, bool) {
	l := muc.NoHistoryLimit
	num := func(name string, into *int) bool {
		if !h.Has(name) {
			return true
		}
		n, err := strconv.Atoi(strings.TrimSpace(h.Get(name)))
		if err != nil || n < 0 {
			return false
		}
		*into = n
		return true
	}
	if !num("maxchars", &l.MaxChars) || !num("maxstanzas", &l.MaxStanzas) || !num("seconds", &l.Seconds) {
		return l, false
	}
	if v := h.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v))
		if err != nil {
			return l, false
		}
		l.Since = t
	}
	return l, true
}

// occupantIQ answers a self-ping (XEP-0410) and passes other iqs between
// occupants (XEP-0045 section 17.4), hiding real JIDs both ways.
func (m *MUC) occupantIQ(s *Session, el *Element, to, room jid.JID) {
	if !isQuery(el) {
		m.answerForwarded(s, el, to)
		return
	}
	p := el.FirstChild()
	nick, joined := m.svc.Occupant(room, s.full)
	if p != nil && p.Space == nsPing && p.Local == "ping" {
		switch {
		case !joined:
			m.failCond(s, el, room, "not-acceptable", "you are not in this room")
			return
		case m.svc.SameNick(nick, to.Resource()):
			s.Reply(el, nil)
			return
		}
	}
	if !joined {
		if p != nil && (p.Space == nsDiscoI || p.Space == nsDiscoIt) {
			m.failCond(s, el, room, "bad-request", "only occupants may query occupants")
			return
		}
		m.failCond(s, el, room, "not-acceptable", "you are not in this room")
		return
	}
	_, sessions, err := m.svc.Target(s.ctx(), room, s.full, to.Resource())
	if err != nil {
		m.fail(s, el, room, err)
		return
	}
	if len(sessions) == 0 {
		m.failCond(s, el, room, "item-not-found", "")
		return
	}
	target := sessions[len(sessions)-1]
	id := "mucfwd-" + randomID(12)
	now := time.Now()
	m.fwdMu.Lock()
	for k, f := range m.fwd {
		if now.After(f.expires) {
			delete(m.fwd, k)
		}
	}
	m.fwd[id] = &forwardedIQ{id: el.Get("id"), asker: s.full, askerOcc: room.WithResource(nick), target: target, expires: now.Add(mucForwardTTL)}
	m.fwdMu.Unlock()
	out := el.ShallowCopy()
	out.Set("from", room.WithResource(nick).String())
	out.Set("to", target.String())
	out.Set("id", id)
	if !m.deliver(target, out.Bytes(nsClient)) {
		m.fwdMu.Lock()
		delete(m.fwd, id)
		m.fwdMu.Unlock()
		m.failCond(s, el, room, "recipient-unavailable", "")
	}
}

// answerForwarded passes the answer to a forwarded iq back to the asker.
func (m *MUC) answerForwarded(s *Session, el *Element, to jid.JID) {
	m.fwdMu.Lock()
	f := m.fwd[el.Get("id")]
	if f != nil && f.target == s.full && f.askerOcc == to {
		delete(m.fwd, el.Get("id"))
	} else {
		f = nil
	}
	m.fwdMu.Unlock()
	if f == nil {
		return
	}
	nick, ok := m.svc.Occupant(to.Bare(), s.full)
	if !ok {
		return
	}
	out := el.ShallowCopy()
	out.Set("from", to.Bare().WithResource(nick).String())
	out.Set("to", f.asker.String())
	out.Set("id", f.id)
	m.deliver(f.asker, out.Bytes(nsClient))
}

// ---- the wire side of the service ----

// mucWire renders what rooms send. Its methods run under a room's lock:
// they only serialise and queue.
type mucWire struct{ m *MUC }

func (w mucWire) Presence(to jid.JID, p *muc.Presence) {
	var b bytes.Buffer
	b.WriteString(`<presence from="`)
	escapeAttr(&b, p.Room.WithResource(p.Nick).String())
	b.WriteString(`" to="`)
	escapeAttr(&b, to.String())
	b.WriteByte('"')
	if p.Unavailable {
		b.WriteString(` type="unavailable"`)
	}
	if p.ID != "" {
		b.WriteString(` id="`)
		escapeAttr(&b, p.ID)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	b.Write(p.Payload)
	item := NewElement(nsMUCUser, "item", "affiliation", p.Affiliation.String(), "role", p.Role.String())
	if !p.JID.IsZero() {
		item.Set("jid", p.JID.String())
	}
	if p.NewNick != "" {
		item.Set("nick", p.NewNick)
	}
	if p.Actor != "" {
		item.Add(NewElement(nsMUCUser, "actor", "nick", p.Actor))
	}
	if p.Reason != "" {
		item.Add(NewElement(nsMUCUser, "reason").AddText(p.Reason))
	}
	x := NewElement(nsMUCUser, "x").Add(item)
	for _, c := range p.Codes {
		x.Add(NewElement(nsMUCUser, "status", "code", strconv.Itoa(c)))
	}
	if d := p.Destroy; d != nil {
		de := NewElement(nsMUCUser, "destroy")
		if !d.Venue.IsZero() {
			de.Set("jid", d.Venue.String())
		}
		if d.Reason != "" {
			de.Add(NewElement(nsMUCUser, "reason").AddText(d.Reason))
		}
		if d.Password != "" {
			de.Add(NewElement(nsMUCUser, "password").AddText(d.Password))
		}
		x.Add(de)
	}
	x.write(&b, nsClient)
	b.WriteString("</presence>")
	w.m.toOccupant(to, b.Bytes())
}

func (w mucWire) Message(to jid.JID, msg *muc.Message) {
	switch msg.Kind {
	case muc.Groupchat:
		w.m.toOccupant(to, withTo(msg.Data, to.String()))
	case muc.History:
		b := withTo(msg.Data, to.String())
		i := bytes.LastIndex(b, []byte("</message>"))
		if i < 0 {
			return
		}
		d := NewElement(nsDelay, "delay", "from", msg.Room.String(), "stamp", msg.Stamp.UTC().Format("2006-01-02T15:04:05.000000Z"))
		out := append(append(slices.Clone(b[:i]), d.Bytes(nsClient)...), b[i:]...)
		w.m.toOccupant(to, out)
	case muc.Subject:
		from := msg.Room
		if msg.Nick != "" {
			from = msg.Room.WithResource(msg.Nick)
		}
		out := NewElement(nsClient, "message", "from", from.String(), "to", to.String(), "type", "groupchat")
		if msg.ID != "" {
			out.Set("id", msg.ID)
		}
		out.Add(NewElement(nsClient, "subject").AddText(msg.Subject))
		if !msg.Live && !msg.Stamp.IsZero() {
			out.Add(NewElement(nsDelay, "delay", "from", msg.Room.String(), "stamp", msg.Stamp.UTC().Format("2006-01-02T15:04:05.000000Z")))
		}
		w.m.toOccupant(to, out.Bytes(nsClient))
	case muc.Status:
		x := NewElement(nsMUCUser, "x")
		for _, c := range msg.Codes {
			x.Add(NewElement(nsMUCUser, "status", "code", strconv.Itoa(c)))
		}
		out := NewElement(nsClient, "message", "from", msg.Room.String(), "to", to.String(), "type", "groupchat", "id", randomID(8)).Add(x)
		w.m.toOccupant(to, out.Bytes(nsClient))
	}
}

func (w mucWire) Replay(a storage.ArchivedMessage) ([]byte, error) {
	el, err := parseElement(a.Data)
	if err != nil {
		return nil, err
	}
	el.RemoveChildren(nsMUCUser, "x")
	return el.Bytes(nsClient), nil
}
