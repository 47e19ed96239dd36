package xmppsrv

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

const (
	nsPush        = "urn:xmpp:push:0"
	nsPushSummary = "urn:xmpp:push:summary"
	nsPubOptions  = "http://jabber.org/protocol/pubsub#publish-options"
	pushDataKey   = "push"
)

// PushConfig configures push notifications (XEP-0357). The zero value is
// the safe default: notifications name the sender but carry no message
// text, since they pass through the app server and the phone vendor's
// push service.
type PushConfig struct {
	// WithBody puts the text of the last message (last-message-body) in
	// notifications. Encrypted messages never give their text.
	WithBody bool
	// WithoutSender leaves last-message-sender out.
	WithoutSender bool
	// MaxDevices is how many registrations one account may hold (default
	// 20); enabling another replaces the oldest.
	MaxDevices int
	// Timeout is how long an app server has to answer a notification
	// (default 30s); no answer leaves the registration in place.
	Timeout time.Duration
	// QueueLength bounds the notifications waiting to be sent (default
	// 4096); past it, notifications are dropped and logged, never waited
	// for by the sender of the message.
	QueueLength int
}

// pushReg is one device's registration: the app server, its node, the
// publish-options the client gave, and the session that enabled it.
type pushReg struct {
	JID     string    `json:"jid"`
	Node    string    `json:"node"`
	Options string    `json:"options,omitempty"` // the jabber:x:data form, as XML
	Device  string    `json:"device"`            // full JID of the enabling session
	Since   time.Time `json:"since"`
}

func (r *pushReg) key() string { return r.JID + "\x00" + r.Node }

// push implements XEP-0357 on the user's server: enable and disable
// (section 5, 6) on the account, and a notification to the app server
// (section 7) when a message reaches an account whose registered device
// has no connected session: the user is offline, the device's session is
// held detached for XEP-0198 resumption, or another resource took the
// message while the phone sleeps; and when a subscription request arrives.
// Registrations are user data "push" in the store, cached in memory.
type push struct {
	srv *Server
	cfg PushConfig

	mu     sync.Mutex
	regs   map[string][]*pushReg // by account; an empty slice when none
	counts map[string]int        // account + reg key -> messages notified since the device was seen
	write  sync.Mutex            // serialises registration changes with their store write

	queue chan pushJob
	wg    sync.WaitGroup
}

type pushJob struct {
	owner jid.JID
	msg   *Element // the message; nil for a subscription request
	// device, when set, is the one resource the job is for: a group chat
	// message goes to the occupant's session only.
	device jid.JID
}

// NewPush returns the XEP-0357 handler for Extend. It starts one goroutine
// that sends notifications; it ends when the Server shuts down.
func NewPush(srv *Server, cfg PushConfig) AccountHandler {
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 4096
	}
	p := &push{srv: srv, cfg: cfg, regs: make(map[string][]*pushReg), counts: make(map[string]int),
		queue: make(chan pushJob, cfg.QueueLength)}
	srv.push = p
	go p.run()
	return p
}

func (p *push) Namespace() string { return nsPush }

func (p *push) Features() (account, server []string) { return []string{nsPush}, nil }

// HandleIQ answers enable and disable on the user's own account.
func (p *push) HandleIQ(s *Session, el, q *Element, owner jid.JID) bool {
	if owner != s.bare {
		return false
	}
	if el.Get("type") != "set" {
		s.send(errorReply(el, "bad-request", "enable and disable are iq sets"))
		return true
	}
	appJID := q.Get("jid")
	var app jid.JID
	if appJID != "" {
		var err error
		if app, err = jid.Parse(appJID); err != nil {
			s.send(errorReply(el, "jid-malformed", "the app server's jid: "+err.Error()))
			return true
		}
	}
	switch q.Local {
	case "enable":
		node := q.Get("node")
		if app.IsZero() || node == "" {
			s.send(errorReply(el, "bad-request", "enable needs the app server's jid and a node"))
			return true
		}
		if p.srv.Local(app.Domain()) && app.Local() != "" && app.IsBare() {
			// An iq to a local bare JID is answered by the server for the
			// account (RFC 6121 8.5.1): the app server would never see it.
			s.send(errorReply(el, "not-acceptable", "a local app server must be given as a full JID"))
			return true
		}
		r := &pushReg{JID: app.String(), Node: node, Device: s.full.String(), Since: time.Now().UTC()}
		if x := q.Child(nsXData, "x"); x != nil {
			if x.Get("type") != "submit" || formType(x) != nsPubOptions {
				s.send(errorReply(el, "bad-request", "the form must be a submitted "+nsPubOptions+" form"))
				return true
			}
			if len(x.Bytes("")) > 8192 {
				s.send(errorReply(el, "not-acceptable", "the publish-options form is too large"))
				return true
			}
			r.Options = string(x.Bytes(""))
		}
		if err := p.change(s.bare, func(list []*pushReg) []*pushReg {
			out := list[:0:0]
			for _, o := range list {
				if o.key() != r.key() {
					out = append(out, o)
				}
			}
			out = append(out, r)
			if len(out) > p.cfg.MaxDevices {
				out = out[len(out)-p.cfg.MaxDevices:]
			}
			return out
		}); err != nil {
			p.srv.log.Error("storing a push registration", "user", s.bare.String(), "err", err)
			s.send(errorReply(el, "internal-server-error", "the registration could not be stored; try again"))
			return true
		}
		p.mu.Lock()
		p.counts[s.bare.String()+"\x00"+r.key()] = 0
		p.mu.Unlock()
	case "disable":
		if app.IsZero() {
			s.send(errorReply(el, "bad-request", "disable needs the app server's jid"))
			return true
		}
		node := q.Get("node")
		if err := p.change(s.bare, func(list []*pushReg) []*pushReg {
			out := list[:0:0]
			for _, o := range list {
				if o.JID != app.String() || (node != "" && o.Node != node) {
					out = append(out, o)
				}
			}
			return out
		}); err != nil {
			p.srv.log.Error("storing a push registration", "user", s.bare.String(), "err", err)
			s.send(errorReply(el, "internal-server-error", "the registration could not be removed; try again"))
			return true
		}
	default:
		s.send(errorReply(el, "feature-not-implemented", "<"+q.Local+"/> is not part of "+nsPush))
		return true
	}
	s.send(iqResult(el, nil).Bytes(nsClient))
	return true
}

func formType(x *Element) string {
	for _, f := range x.Elements() {
		if f.Local == "field" && f.Get("var") == "FORM_TYPE" {
			return f.ChildText(nsXData, "value")
		}
	}
	return ""
}

// list returns owner's registrations, reading the store once.
func (p *push) list(owner string) ([]*pushReg, error) {
	p.mu.Lock()
	l, ok := p.regs[owner]
	p.mu.Unlock()
	if ok {
		return l, nil
	}
	b, err := p.srv.cfg.Store.UserData(p.srv.ctx, owner, pushDataKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		l = []*pushReg{}
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, err
		}
		if l == nil {
			l = []*pushReg{}
		}
	}
	p.mu.Lock()
	if cur, ok := p.regs[owner]; ok {
		l = cur
	} else {
		p.regs[owner] = l
	}
	p.mu.Unlock()
	return l, nil
}

// change replaces owner's registrations with what fn makes of them, in the
// store first. fn must not modify the slice it is given.
func (p *push) change(owner jid.JID, fn func([]*pushReg) []*pushReg) error {
	p.write.Lock()
	defer p.write.Unlock()
	key := owner.String()
	list, err := p.list(key)
	if err != nil {
		return err
	}
	next := fn(list)
	if len(next) == 0 {
		err = p.srv.cfg.Store.DeleteUserData(p.srv.ctx, key, pushDataKey)
	} else {
		var b []byte
		if b, err = json.Marshal(next); err == nil {
			err = p.srv.cfg.Store.PutUserData(p.srv.ctx, key, pushDataKey, b)
		}
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.regs[key] = next
	p.mu.Unlock()
	return nil
}

// notifyPush is called for every message the server delivers to, or
// stores for, a local account. It queues a notification check and never
// blocks the sender.
func (srv *Server) notifyPush(el *Element, to jid.JID, typ string) {
	p := srv.push
	if p == nil || to.Local() == "" {
		return
	}
	job := pushJob{owner: to.Bare(), msg: el}
	switch {
	case typ == "groupchat" && !to.IsBare() && notifiable(el, "chat") && el.Child(nsClient, "subject") == nil:
		// A room message to one occupant session: it wakes the device
		// that session belongs to when that session is not connected
		// (held detached for resumption), as a chat message would. Rooms
		// send nothing to offline users, so no other device is told.
		job.device = to
	case !notifiable(el, typ):
		return
	}
	p.mu.Lock()
	l, cached := p.regs[to.Bare().String()]
	p.mu.Unlock()
	if cached && len(l) == 0 {
		return // the common case: no device registered
	}
	select {
	case p.queue <- job:
	default:
		srv.log.Warn("push notification queue full; dropping one", "to", to.Bare().String())
	}
}

// notifiable says whether a message is worth waking a phone for: one with
// a body, an encrypted payload, or a call proposal (XEP-0353). Chat
// states, receipts, markers and errors are not.
func notifiable(el *Element, typ string) bool {
	switch typ {
	case "", "normal", "chat":
	default:
		return false
	}
	if el.Child(nsClient, "body") != nil {
		return true
	}
	for _, c := range el.Elements() {
		switch {
		case c.Local == "encrypted" && (c.Space == "eu.siacs.conversations.axolotl" || c.Space == "urn:xmpp:omemo:2" || c.Space == "urn:xmpp:openpgp:0"):
			return true
		case c.Local == "propose" && c.Space == "urn:xmpp:jingle-message:0":
			return true
		}
	}
	return false
}

func (p *push) run() {
	for {
		select {
		case j := <-p.queue:
			p.notify(j)
		case <-p.srv.ctx.Done():
			return
		}
	}
}

// notify sends a notification to each of owner's devices that has no
// connected session.
func (p *push) notify(j pushJob) {
	owner := j.owner.String()
	list, err := p.list(owner)
	if err != nil {
		p.srv.log.Error("reading push registrations", "user", owner, "err", err)
		return
	}
	for _, r := range list {
		if !j.device.IsZero() && r.Device != j.device.String() {
			continue
		}
		ck := owner + "\x00" + r.key()
		if p.connected(r) {
			p.mu.Lock()
			p.counts[ck] = 0
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		if j.msg != nil {
			p.counts[ck]++
		}
		n := p.counts[ck]
		p.mu.Unlock()
		pending := -1
		if j.msg == nil {
			reqs, err := p.srv.cfg.Roster.Pending(p.srv.ctx, j.owner)
			if err != nil {
				p.srv.log.Error("pending subscription requests", "user", owner, "err", err)
				return
			}
			pending = len(reqs)
		}
		p.publish(j.owner, r, j.msg, n, pending)
	}
}

// notifyPushSubscription is called when a subscription request reaches a
// local account: devices without a connected session are told how many
// requests wait (pending-subscription-count, XEP-0357 section 7).
func (srv *Server) notifyPushSubscription(owner jid.JID) {
	p := srv.push
	if p == nil {
		return
	}
	p.mu.Lock()
	l, cached := p.regs[owner.Bare().String()]
	p.mu.Unlock()
	if cached && len(l) == 0 {
		return
	}
	select {
	case p.queue <- pushJob{owner: owner.Bare()}:
	default:
		srv.log.Warn("push notification queue full; dropping one", "to", owner.Bare().String())
	}
}

// detached reports whether the session waits without a connection for
// its client to resume it (XEP-0198).
func (s *Session) detached() bool {
	s.sm.mu.Lock()
	defer s.sm.mu.Unlock()
	return s.sm.detached != nil
}

// connected reports whether the device that registered r has a session
// that is connected now: bound, and not held detached for resumption.
func (p *push) connected(r *pushReg) bool {
	dev, err := jid.Parse(r.Device)
	if err != nil {
		return false
	}
	for _, s := range p.srv.router.Resources(dev.Bare().String()) {
		if s.full != dev {
			continue
		}
		if !s.detached() && !s.resumed.Load() {
			return true
		}
	}
	return false
}

// publish sends one notification (XEP-0357 section 7) from the user's
// bare JID to the app server and handles its answer: an error of type
// cancel (the node is gone, the app server refuses) disables the
// registration (section 8); a wait error, no answer, or the app server's
// domain being unreachable leave it.
func (p *push) publish(owner jid.JID, r *pushReg, msg *Element, count, pending int) {
	form := NewElement(nsXData, "x", "type", "submit").Add(
		NewElement(nsXData, "field", "var", "FORM_TYPE").Add(NewElement(nsXData, "value").AddText(nsPushSummary)),
		NewElement(nsXData, "field", "var", "message-count").Add(NewElement(nsXData, "value").AddText(strconv.Itoa(count))))
	if pending >= 0 {
		form.Add(NewElement(nsXData, "field", "var", "pending-subscription-count").Add(NewElement(nsXData, "value").AddText(strconv.Itoa(pending))))
	}
	if msg == nil {
		msg = NewElement(nsClient, "message") // nothing more to tell
	}
	if !p.cfg.WithoutSender {
		if from := msg.Get("from"); from != "" {
			if fj, err := jid.Parse(from); err == nil {
				form.Add(NewElement(nsXData, "field", "var", "last-message-sender").Add(NewElement(nsXData, "value").AddText(fj.Bare().String())))
			}
		}
	}
	if p.cfg.WithBody {
		if body := msg.ChildText(nsClient, "body"); body != "" && !encrypted(msg) {
			if len(body) > 512 {
				body = truncateUTF8(body, 512)
			}
			form.Add(NewElement(nsXData, "field", "var", "last-message-body").Add(NewElement(nsXData, "value").AddText(body)))
		}
	}
	ps := NewElement(nsPubsub, "pubsub").Add(
		NewElement(nsPubsub, "publish", "node", r.Node).Add(
			NewElement(nsPubsub, "item").Add(NewElement(nsPush, "notification").Add(form))))
	if r.Options != "" {
		if x, err := parseElement([]byte(r.Options)); err == nil {
			ps.Add(NewElement(nsPubsub, "publish-options").Add(x))
		}
	}
	id := "push-" + randomID(9)
	iq := NewElement(nsClient, "iq", "type", "set", "id", id, "from", owner.String(), "to", r.JID).Add(ps)
	p.srv.sendFromServer(iq, p.cfg.Timeout, func(answer *Element) {
		switch {
		case answer == nil:
			p.srv.log.Info("push app server did not answer", "user", owner.String(), "app", r.JID)
		case answer.Get("type") == "error":
			e := answer.Child(nsClient, "error")
			// An unreachable remote server is not the app server's verdict
			// on the registration: it stays for the next message.
			unreachable := e != nil && (e.Child(nsStanzas, "remote-server-not-found") != nil || e.Child(nsStanzas, "remote-server-timeout") != nil)
			if (e == nil || e.Get("type") == "cancel") && !unreachable {
				p.srv.log.Info("push app server refused a notification; disabling the registration",
					"user", owner.String(), "app", r.JID, "error", string(answer.Bytes(nsClient)))
				p.change(owner, func(list []*pushReg) []*pushReg {
					out := list[:0:0]
					for _, o := range list {
						if o.key() != r.key() {
							out = append(out, o)
						}
					}
					return out
				})
			}
		}
	})
}

func encrypted(msg *Element) bool {
	for _, c := range msg.Elements() {
		if c.Local == "encrypted" || (c.Local == "x" && c.Space == "jabber:x:encrypted") {
			return true
		}
	}
	return false
}

func truncateUTF8(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// sendFromServer routes an iq get or set that the server itself sends on
// a user's behalf (its 'from' set) to any address, and calls fn with the
// answer, or with nil after timeout. A local full JID gets it on its
// session; an address on another server gets it through federation (see
// SetRemote), or, without federation, an answer of remote-server-not-found
// at once, as a client's stanza would.
func (srv *Server) sendFromServer(iq *Element, timeout time.Duration, fn func(*Element)) {
	to, err := jid.Parse(iq.Get("to"))
	id := iq.Get("id")
	fail := func(cond string) {
		fn(errorElement(iq, cond, ""))
	}
	if err != nil {
		fail("jid-malformed")
		return
	}
	key := to.String() + " " + id
	srv.ext.mu.Lock()
	if srv.ext.pending == nil {
		srv.ext.pending = make(map[string]func(*Element))
	}
	srv.ext.pending[key] = fn
	srv.ext.mu.Unlock()
	forget := func() bool {
		srv.ext.mu.Lock()
		_, ok := srv.ext.pending[key]
		delete(srv.ext.pending, key)
		srv.ext.mu.Unlock()
		return ok
	}
	sent := false
	switch {
	case !srv.Local(to.Domain()):
		// Through federation; a failure comes back as an error answer.
		srv.sendRemote(iq)
		sent = true
	case to.Local() != "" && !to.IsBare():
		for _, r := range srv.router.Resources(to.Bare().String()) {
			if r.full == to {
				sent = r.send(iq.Bytes(nsClient))
				break
			}
		}
	}
	if !sent {
		if forget() {
			fail("service-unavailable")
		}
		return
	}
	time.AfterFunc(timeout, func() {
		if forget() {
			fn(nil)
		}
	})
}
