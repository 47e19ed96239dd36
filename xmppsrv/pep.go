package xmppsrv

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/pubsub"
	"github.com/parleyhq/parley/storage"
)

const (
	nsPubsub       = "http://jabber.org/protocol/pubsub"
	nsPubsubOwner  = nsPubsub + "#owner"
	nsPubsubEvent  = nsPubsub + "#event"
	nsPubsubErrors = nsPubsub + "#errors"
	nsPubsubOpts   = nsPubsub + "#publish-options"
	nsNodeConfig   = nsPubsub + "#node_config"
	nsCaps         = "http://jabber.org/protocol/caps"
	nsAvatarData   = "urn:xmpp:avatar:data"
	nsAvatarMeta   = "urn:xmpp:avatar:metadata"
	nsVCardUpdate  = "vcard-temp:x:update"
	nsVCardConv    = "urn:xmpp:pep-vcard-conversion:0"

	// capsNode names Parley in its XEP-0115 capabilities.
	capsNode = "https://github.com/parleyhq/parley"
)

// pepFeatures is what the account's disco#info lists for PEP: exactly
// the XEP-0060 features implemented.
var pepFeatures = []string{
	nsPubsub,
	nsPubsub + "#access-open",
	nsPubsub + "#access-presence",
	nsPubsub + "#access-roster",
	nsPubsub + "#access-whitelist",
	nsPubsub + "#auto-create",
	nsPubsub + "#auto-subscribe",
	nsPubsub + "#config-node",
	nsPubsub + "#create-and-configure",
	nsPubsub + "#create-nodes",
	nsPubsub + "#delete-items",
	nsPubsub + "#delete-nodes",
	nsPubsub + "#filtered-notifications",
	nsPubsub + "#item-ids",
	nsPubsub + "#last-published",
	nsPubsub + "#manage-affiliations",
	nsPubsub + "#modify-affiliations",
	nsPubsub + "#persistent-items",
	nsPubsub + "#presence-notifications",
	nsPubsub + "#publish",
	nsPubsub + "#publish-options",
	nsPubsub + "#purge-nodes",
	nsPubsub + "#retract-items",
	nsPubsub + "#retrieve-affiliations",
	nsPubsub + "#retrieve-default",
	nsPubsub + "#retrieve-items",
	nsPubsub + "#retrieve-subscriptions",
	nsPubsub + "#subscribe",
	nsPubsub + "#subscription-options",
	nsVCardConv,
}

// AccountServices returns the account handlers for personal eventing
// (PEP, XEP-0163, with avatars XEP-0084/XEP-0398 and entity capabilities
// XEP-0115), private XML storage (XEP-0049, with bookmarks XEP-0048 <->
// XEP-0402) and blocking (XEP-0191), to pass to srv.Extend.
func AccountServices(srv *Server) []AccountHandler {
	b := newBlocking(srv)
	p := &PEP{srv: srv, sessions: make(map[*Session]*pepSession), caps: make(map[string]map[string]bool),
		asking: make(map[string][]*Session)}
	p.svc = pubsub.New(pubsub.Options{Store: srv.cfg.Store, Presence: srv.cfg.Roster, Blocked: b.Blocked,
		MaxPayload: srv.cfg.MaxStanzaSize})
	priv := &privateStorage{srv: srv, pep: p}
	p.priv = priv
	return []AccountHandler{p, pepOwner{p}, priv, b}
}

// PEP is the personal eventing service of every account: XEP-0060
// requests on the http://jabber.org/protocol/pubsub namespace (its
// #owner twin is pepOwner), notifications to the owner's resources and
// contacts filtered by their XEP-0115 capabilities, the last items at a
// resource's initial presence, and the XEP-0398 avatar conversion.
type PEP struct {
	srv  *Server
	svc  *pubsub.Service
	priv *privateStorage // bookmarks kept in step across XEP-0048, XEP-0049 and XEP-0402

	mu       sync.Mutex
	sessions map[*Session]*pepSession
	caps     map[string]map[string]bool // verified XEP-0115 ver -> features
	asking   map[string][]*Session      // ver being asked -> sessions waiting for it
	avatars  sync.Map                   // owner bare JID -> avatar SHA-1 hex ("" for none)
}

// pepSession is what PEP knows of one available resource.
type pepSession struct {
	ver      string          // XEP-0115 ver of its last presence
	features map[string]bool // its features, once known
	sentLast bool            // the last items were sent for this availability
	negative bool            // negative priority: no notifications
}

// Namespace implements AccountHandler.
func (p *PEP) Namespace() string { return nsPubsub }

// Features implements AccountHandler.
func (p *PEP) Features() (account, server []string) { return pepFeatures, nil }

// Identities implements AccountDisco: the account is a pubsub/pep service.
func (p *PEP) Identities() [][2]string { return [][2]string{{"pubsub", "pep"}} }

// DiscoItems lists the owner's nodes the requester may see (XEP-0163
// section 9.2).
func (p *PEP) DiscoItems(s *Session, el *Element, owner jid.JID, node string) bool {
	if node != "" {
		return false
	}
	nodes, err := p.svc.Nodes(s.ctx(), owner, s.full)
	if err != nil {
		p.reply(s, el, err)
		return true
	}
	q := NewElement(nsDiscoIt, "query")
	for _, n := range nodes {
		q.Add(NewElement(nsDiscoIt, "item", "jid", owner.String(), "node", n.Name))
	}
	r := iqResult(el, q)
	r.Set("from", owner.String())
	s.send(r.Bytes(nsClient))
	return true
}

// DiscoNode answers disco#info on one node (XEP-0060 section 5.3).
func (p *PEP) DiscoNode(s *Session, el *Element, owner jid.JID, node string) bool {
	n, err := p.svc.Lookup(s.ctx(), owner, node)
	if err == nil {
		err = p.svc.Allowed(s.ctx(), n, s.full)
	}
	if err != nil {
		p.reply(s, el, err)
		return true
	}
	q := NewElement(nsDiscoI, "query", "node", node).Add(
		NewElement(nsDiscoI, "identity", "category", "pubsub", "type", "leaf"),
		NewElement(nsDiscoI, "feature", "var", nsPubsub))
	r := iqResult(el, q)
	r.Set("from", owner.String())
	s.send(r.Bytes(nsClient))
	return true
}

// reply answers el with err's conditions, or with a result.
func (p *PEP) reply(s *Session, el *Element, err error, payload ...*Element) {
	if err == nil {
		var pl *Element
		if len(payload) > 0 {
			pl = payload[0]
		}
		s.send(iqResult(el, pl).Bytes(nsClient))
		return
	}
	var pe *pubsub.Error
	if !errors.As(err, &pe) {
		p.srv.log.Error("pubsub", "user", s.bare.String(), "err", err)
		s.send(errorReply(el, "internal-server-error", "try again"))
		return
	}
	if pe.Cond == "internal-server-error" {
		p.srv.log.Error("pubsub", "user", s.bare.String(), "err", err)
	}
	e := errorElement(el, pe.Cond, pe.Text)
	if pe.App != "" {
		app := NewElement(nsPubsubErrors, pe.App)
		if pe.Feature != "" {
			app.Set("feature", pe.Feature)
		}
		e.Child(nsClient, "error").Add(app)
	}
	s.send(e.Bytes(nsClient))
}

func unsupportedReply(s *Session, el *Element, feature string) {
	e := errorElement(el, "feature-not-implemented", "")
	e.Child(nsClient, "error").Add(NewElement(nsPubsubErrors, "unsupported", "feature", feature))
	s.send(e.Bytes(nsClient))
}

// HandleIQ implements AccountHandler for the pubsub namespace.
func (p *PEP) HandleIQ(s *Session, el, ps *Element, owner jid.JID) bool {
	kids := ps.Elements()
	if len(kids) == 0 {
		s.send(errorReply(el, "bad-request", "an empty <pubsub/>"))
		return true
	}
	op := kids[0]
	ctx := s.ctx()
	get := el.Get("type") == "get"
	switch {
	case get && op.Local == "items":
		if op.Get("node") == nsBookmarks && owner == s.bare && p.priv != nil {
			// A client of XEP-0048 over PEP reads the bookmarks that so
			// far live only in the XEP-0402 node (#compat-pep).
			if _, err := p.svc.Lookup(ctx, owner, nsBookmarks); errors.Is(err, pubsub.ErrNotFound) {
				if _, err := p.svc.Lookup(ctx, owner, nsBookmarks2); err == nil {
					p.priv.legacyPEP(s)
				}
			}
		}
		max, _ := strconv.Atoi(op.Get("max_items"))
		var ids []string
		for _, it := range op.Elements() {
			if it.Local == "item" && it.Get("id") != "" {
				ids = append(ids, it.Get("id"))
			}
		}
		n, items, err := p.svc.Items(ctx, owner, s.full, op.Get("node"), ids, max)
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		out := NewElement(nsPubsub, "items", "node", n.Name)
		if max > 0 {
			out.Set("max_items", strconv.Itoa(max))
		}
		for _, it := range items {
			out.Add(p.itemElement(nsPubsub, it, true))
		}
		r := iqResult(el, NewElement(nsPubsub, "pubsub").Add(out))
		if owner != s.bare {
			r.Set("from", owner.String())
		}
		s.sendWait(r.Bytes(nsClient))
	case !get && op.Local == "publish":
		p.publish(s, el, ps, op, owner)
	case !get && op.Local == "retract":
		it := op.Child(nsPubsub, "item")
		if it == nil {
			p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "item-required", Text: "retract needs an item"})
			return true
		}
		n, err := p.svc.Retract(ctx, owner, s.full, op.Get("node"), it.Get("id"))
		if err == nil {
			p.bookmarksChanged(s, n.Name, nil)
		}
		p.reply(s, el, err)
		if err == nil && (boolAttr(op.Get("notify")) || n.Config.NotifyRetract()) {
			p.notify(n, NewElement(nsPubsubEvent, "retract", "id", it.Get("id")), s.full)
		}
	case !get && op.Local == "create":
		fields := map[string]string{}
		if c := ps.Child(nsPubsub, "configure"); c != nil {
			if x := c.Child(nsXData, "x"); x != nil {
				_, fields = parseForm(x)
			}
		}
		_, err := p.svc.Create(ctx, owner, s.full, op.Get("node"), fields)
		p.reply(s, el, err)
	case !get && op.Local == "subscribe":
		who, err := jid.Parse(op.Get("jid"))
		if err != nil {
			p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "invalid-jid", Text: "subscribe needs your JID"})
			return true
		}
		n, err := p.svc.Subscribe(ctx, owner, s.full, who, op.Get("node"))
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		deliver := true
		if o := ps.Child(nsPubsub, "options"); o != nil {
			if x := o.Child(nsXData, "x"); x != nil {
				ft, fields := parseForm(x)
				fields["FORM_TYPE"] = ft
				if err := p.svc.SetSubscriptionOptions(ctx, owner, s.full, who, n.Name, fields); err != nil {
					p.svc.Unsubscribe(ctx, owner, s.full, who, n.Name)
					p.reply(s, el, err)
					return true
				}
				if o, err := p.svc.SubscriptionOptions(ctx, owner, s.full, who, n.Name); err == nil && !o.Deliver {
					deliver = false
				}
			}
		}
		sub := NewElement(nsPubsub, "subscription", "node", n.Name, "jid", who.String(), "subscription", "subscribed")
		r := iqResult(el, NewElement(nsPubsub, "pubsub").Add(sub))
		r.Set("from", owner.String())
		s.send(r.Bytes(nsClient))
		if last := n.Config.SendLast(); deliver && (last == pubsub.SendOnSub || last == pubsub.SendOnSubAndPresence) {
			if it, ok, _ := p.svc.Last(ctx, owner, n.Name); ok {
				s.send(p.notification(n, p.itemElement(nsPubsubEvent, it, n.Config.DeliverPayloads()), s.full, false, &it.Stamp).Bytes(nsClient))
			}
		}
	case !get && op.Local == "unsubscribe":
		who, err := jid.Parse(op.Get("jid"))
		if err != nil {
			p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "invalid-jid", Text: "unsubscribe needs your JID"})
			return true
		}
		_, err = p.svc.Unsubscribe(ctx, owner, s.full, who, op.Get("node"))
		p.reply(s, el, err)
	case get && op.Local == "subscriptions":
		subs, err := p.svc.Subscriptions(ctx, owner, s.full, op.Get("node"))
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		out := NewElement(nsPubsub, "subscriptions")
		if n := op.Get("node"); n != "" {
			out.Set("node", n)
		}
		for _, sub := range subs {
			out.Add(NewElement(nsPubsub, "subscription", "node", sub.Node, "jid", sub.JID, "subscription", sub.State))
		}
		p.reply(s, el, nil, NewElement(nsPubsub, "pubsub").Add(out))
	case get && op.Local == "affiliations":
		affs, err := p.svc.Affiliations(ctx, owner, s.full, op.Get("node"))
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		out := NewElement(nsPubsub, "affiliations")
		if n := op.Get("node"); n != "" {
			out.Set("node", n)
		}
		for _, a := range affs {
			out.Add(NewElement(nsPubsub, "affiliation", "node", a.Node, "affiliation", a.Affiliation))
		}
		p.reply(s, el, nil, NewElement(nsPubsub, "pubsub").Add(out))
	case get && op.Local == "default":
		p.reply(s, el, nil, NewElement(nsPubsub, "pubsub").Add(NewElement(nsPubsub, "default").Add(configForm(pubsub.DefaultConfig(), "form"))))
	case op.Local == "options":
		p.subscriptionOptions(s, el, op, owner, get)
	case op.Local == "configure":
		s.send(errorReply(el, "bad-request", "<configure/> follows <create/>; a node's configuration is in the #owner namespace"))
	default:
		s.send(errorReply(el, "feature-not-implemented", "<"+op.Local+"/> is not supported here"))
	}
	return true
}

// subscriptionOptions gets or sets one subscription's options (XEP-0060
// 6.3): the pubsub#subscribe_options form with pubsub#deliver.
func (p *PEP) subscriptionOptions(s *Session, el, op *Element, owner jid.JID, get bool) {
	ctx := s.ctx()
	who, err := jid.Parse(op.Get("jid"))
	if err != nil {
		p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "jid-required", Text: "options need the subscribed JID"})
		return
	}
	node := op.Get("node")
	if node == "" {
		p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "nodeid-required", Text: "options need a node"})
		return
	}
	if get {
		o, err := p.svc.SubscriptionOptions(ctx, owner, s.full, who, node)
		if err != nil {
			p.reply(s, el, err)
			return
		}
		x := NewElement(nsXData, "x", "type", "form").Add(
			NewElement(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").Add(NewElement(nsXData, "value").AddText(pubsub.SubscribeOptionsForm)),
			NewElement(nsXData, "field", "var", "pubsub#deliver", "type", "boolean", "label", "Receive notifications").Add(NewElement(nsXData, "value").AddText(boolValue(o.Deliver))))
		p.reply(s, el, nil, NewElement(nsPubsub, "pubsub").Add(NewElement(nsPubsub, "options", "node", node, "jid", who.String()).Add(x)))
		return
	}
	x := op.Child(nsXData, "x")
	if x == nil || x.Get("type") != "submit" {
		p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "invalid-options", Text: "submit the " + pubsub.SubscribeOptionsForm + " form"})
		return
	}
	ft, fields := parseForm(x)
	fields["FORM_TYPE"] = ft
	p.reply(s, el, p.svc.SetSubscriptionOptions(ctx, owner, s.full, who, node, fields))
}

// itemElement renders an item in namespace ns (pubsub or pubsub#event).
func (p *PEP) itemElement(ns string, it pubsub.Item, payload bool) *Element {
	e := NewElement(ns, "item", "id", it.ID)
	if ns == nsPubsubEvent && !it.Publisher.IsZero() {
		e.Set("publisher", it.Publisher.Bare().String())
	}
	if payload && len(it.Payload) > 0 {
		if pl, err := parseElement(it.Payload); err == nil {
			e.Add(pl)
		}
	}
	return e
}

// publish handles <publish/> (XEP-0060 section 7.1).
func (p *PEP) publish(s *Session, el, ps, op *Element, owner jid.JID) {
	if owner != s.bare {
		p.reply(s, el, &pubsub.Error{Cond: "forbidden", Text: "only the account owner publishes here"})
		return
	}
	items := op.Elements()
	if len(items) != 1 || items[0].Local != "item" || items[0].Space != nsPubsub {
		p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "item-required", Text: "publish one <item/>"})
		return
	}
	payloads := items[0].Elements()
	if len(payloads) != 1 {
		p.reply(s, el, &pubsub.Error{Cond: "bad-request", App: "invalid-payload", Text: "an item carries exactly one payload"})
		return
	}
	req := pubsub.Publish{Node: op.Get("node"), Item: pubsub.Item{ID: items[0].Get("id"), Payload: payloads[0].Bytes("")}}
	if po := ps.Child(nsPubsub, "publish-options"); po != nil {
		x := po.Child(nsXData, "x")
		if x == nil {
			p.reply(s, el, &pubsub.Error{Cond: "bad-request", Text: "publish-options holds a data form"})
			return
		}
		typ, fields := parseForm(x)
		if typ != nsPubsubOpts {
			p.reply(s, el, &pubsub.Error{Cond: "bad-request", Text: "the publish-options FORM_TYPE is " + nsPubsubOpts})
			return
		}
		req.Options = fields
	}
	res, err := p.publishAs(s, owner, s.full, req, true)
	if err != nil {
		p.reply(s, el, err)
		return
	}
	// The other bookmarks node is brought in step before the result, so
	// that a client that saw the result reads both nodes changed.
	p.bookmarksChanged(s, req.Node, payloads[0])
	out := NewElement(nsPubsub, "publish", "node", res.Node.Name).Add(NewElement(nsPubsub, "item", "id", res.Item.ID))
	s.send(iqResult(el, NewElement(nsPubsub, "pubsub").Add(out)).Bytes(nsClient))
	p.notify(res.Node, p.itemElement(nsPubsubEvent, res.Item, res.Node.Config.DeliverPayloads()), s.full)
}

// bookmarksChanged keeps the two PEP bookmark nodes in step after a
// client changed one (XEP-0402 section 5.3, "#compat-pep").
func (p *PEP) bookmarksChanged(s *Session, node string, payload *Element) {
	if p.priv == nil {
		return
	}
	switch {
	case node == nsBookmarks && payload != nil && payload.Space == nsBookmarks && payload.Local == "storage":
		p.priv.fromLegacyPEP(s, payload)
	case node == nsBookmarks2:
		p.priv.legacyPEP(s)
	}
}

// publishAs publishes and, with convert, applies the XEP-0398 conversion
// of a new avatar to the vCard. It does not notify.
func (p *PEP) publishAs(s *Session, owner, publisher jid.JID, req pubsub.Publish, convert bool) (pubsub.Published, error) {
	res, err := p.svc.Publish(s.ctx(), owner, publisher, req)
	if err == nil && convert && req.Node == nsAvatarMeta {
		p.avatarToVCard(s, owner, req.Item.Payload)
	}
	return res, err
}

// notification builds one event message from owner to to.
func (p *PEP) notification(n pubsub.Node, inner *Element, to jid.JID, replyTo bool, delay *time.Time) *Element {
	m := NewElement(nsClient, "message", "from", n.Owner.String(), "to", to.String(),
		"type", n.Config.NotificationType(), "id", randomID(9))
	m.Add(NewElement(nsPubsubEvent, "event").Add(NewElement(nsPubsubEvent, "items", "node", n.Name).Add(inner)))
	if delay != nil {
		m.Add(NewElement(nsDelay, "delay", "from", n.Owner.String(), "stamp", delay.UTC().Format("2006-01-02T15:04:05.000Z")))
	}
	return m
}

// wants reports whether an available resource asked for n's events
// (filtered notifications, XEP-0163 section 4.2).
func (p *PEP) wants(r *Session, node string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.sessions[r]
	return ps != nil && !ps.negative && ps.features[node+"+notify"]
}

// visible reports whether n's events may reach r, r being the owner or a
// contact who receives the owner's presence.
func (p *PEP) visible(n pubsub.Node, r *Session) bool {
	if r.bare == n.Owner {
		return true
	}
	if p.srv.blockedPair(n.Owner, r.full) {
		return false
	}
	a := n.Affiliations[r.bare.String()]
	switch {
	case a == pubsub.Outcast:
		return false
	case n.Config.AccessModel() == pubsub.Whitelist:
		return a == pubsub.Member || a == pubsub.Publisher
	}
	return true
}

// notify sends an event (an item or a retract in inner) to everyone
// XEP-0163 section 4.3 names: the owner's resources and the available
// resources of contacts who share the owner's presence, both filtered by
// their capabilities, and explicit subscribers (XEP-0060 section 7.1.2).
func (p *PEP) notify(n pubsub.Node, inner *Element, publisher jid.JID) {
	if !n.Config.DeliverNotifications() {
		return
	}
	sent := make(map[*Session]bool)
	send := func(r *Session, replyTo bool) {
		if sent[r] || !r.isAvailable() {
			return
		}
		sent[r] = true
		m := p.notification(n, inner, r.full, replyTo, nil)
		if replyTo && !publisher.IsZero() {
			m.Add(NewElement(nsAddress, "addresses").Add(NewElement(nsAddress, "address", "type", "replyto", "jid", publisher.String())))
		}
		r.send(m.Bytes(nsClient))
	}
	for _, r := range p.srv.router.Resources(n.Owner.String()) {
		if p.wants(r, n.Name) {
			send(r, true)
		}
	}
	ctx := p.srv.ctx
	explicit, domain, err := p.srv.cfg.Roster.PresenceTargets(ctx, n.Owner)
	if err != nil {
		p.srv.log.Error("presence targets for PEP", "user", n.Owner.String(), "err", err)
	}
	contact := func(r *Session) {
		if r.bare != n.Owner && p.wants(r, n.Name) && p.visible(n, r) {
			send(r, true)
		}
	}
	for _, c := range explicit {
		for _, r := range p.srv.router.Resources(c.String()) {
			contact(r)
		}
	}
	if domain {
		if p.domainMember(n.Owner) {
			p.srv.router.Domain(n.Owner.Domain(), func(r *Session) bool {
				if r.domainMember {
					contact(r)
				}
				return true
			})
		}
	}
	for who := range n.Subscriptions {
		j, err := jid.Parse(who)
		if err != nil || !n.Delivers(who) || p.svc.Allowed(ctx, n, j) != nil || p.srv.blockedPair(n.Owner, j) {
			continue
		}
		for _, r := range p.srv.router.Resources(j.Bare().String()) {
			if (j.IsBare() || r.full == j) && !sent[r] {
				send(r, false)
				if !j.IsBare() {
					break
				}
			}
		}
	}
}

// domainMember reports whether owner is a chat-enabled user of its
// domain, whom the domain roster shows to everyone there.
func (p *PEP) domainMember(owner jid.JID) bool {
	e, err := p.srv.cfg.Directory.Lookup(p.srv.ctx, owner.Address())
	return err == nil && e.ChatEnabled
}

// Presence implements PresenceWatcher: the avatar hash goes into every
// available presence (XEP-0398 section 4), and a broadcast presence tells
// PEP the resource's capabilities (XEP-0115) and, the first time, sends
// it the last items it asked for (XEP-0163 section 4.3.2).
func (p *PEP) Presence(s *Session, el *Element, to jid.JID) {
	typ := el.Get("type")
	if typ == "" {
		p.injectAvatarHash(s.bare, el)
	}
	if !to.IsZero() {
		return
	}
	switch typ {
	case "":
	case "unavailable":
		p.mu.Lock()
		delete(p.sessions, s)
		p.mu.Unlock()
		return
	default:
		return
	}
	prio, _ := strconv.Atoi(strings.TrimSpace(el.ChildText(nsClient, "priority")))
	c := el.Child(nsCaps, "c")
	p.mu.Lock()
	ps := p.sessions[s]
	if ps == nil {
		ps = &pepSession{}
		p.sessions[s] = ps
	}
	ps.negative = prio < 0
	ver, node := "", ""
	if c != nil && c.Get("hash") == "sha-1" {
		ver, node = c.Get("ver"), c.Get("node")
	}
	if ver != ps.ver {
		ps.ver = ver
		ps.features = p.caps[ver]
	}
	ready := ps.features != nil && !ps.sentLast && !ps.negative
	if ready {
		ps.sentLast = true
	}
	ask := ver != "" && ps.features == nil
	if ask {
		waiting := p.asking[ver]
		p.asking[ver] = append(waiting, s)
		ask = len(waiting) == 0
	}
	features := ps.features
	p.mu.Unlock()
	if ready {
		p.sendLast(s, features)
	}
	if ask {
		q := NewElement(nsClient, "iq", "type", "get").Add(NewElement(nsDiscoI, "query", "node", node+"#"+ver))
		p.srv.SendIQ(s, q, 30*time.Second, func(r *Element) { p.capsAnswer(s, ver, r) })
	}
}

// capsAnswer takes a client's disco#info answer for ver: verified, it is
// cached for everyone (XEP-0115 section 5.4); either way it applies to
// the sessions that announced ver.
func (p *PEP) capsAnswer(s *Session, ver string, r *Element) {
	var features map[string]bool
	if r != nil && r.Get("type") == "result" {
		if q := r.Child(nsDiscoI, "query"); q != nil {
			features = make(map[string]bool)
			for _, f := range q.Elements() {
				if f.Local == "feature" && f.Space == nsDiscoI {
					features[f.Get("var")] = true
				}
			}
			if h, ok := capsHash(q); !ok || h != ver {
				// Not verifiable: good for this session only.
				p.mu.Lock()
				delete(p.asking, ver)
				if ps := p.sessions[s]; ps != nil && ps.ver == ver {
					ps.features = features
				}
				p.mu.Unlock()
				p.resume([]*Session{s})
				return
			}
		}
	}
	p.mu.Lock()
	waiting := p.asking[ver]
	delete(p.asking, ver)
	if features != nil {
		p.caps[ver] = features
		for _, w := range waiting {
			if ps := p.sessions[w]; ps != nil && ps.ver == ver {
				ps.features = features
			}
		}
	}
	p.mu.Unlock()
	p.resume(waiting)
}

// resume sends the last items to sessions whose capabilities became known.
func (p *PEP) resume(sessions []*Session) {
	for _, w := range sessions {
		p.mu.Lock()
		ps := p.sessions[w]
		ready := ps != nil && ps.features != nil && !ps.sentLast && !ps.negative
		var features map[string]bool
		if ready {
			ps.sentLast = true
			features = ps.features
		}
		p.mu.Unlock()
		if ready {
			p.sendLast(w, features)
		}
	}
}

// sendLast sends a newly available resource the last item of each node it
// wants events of, from its own account and from every contact whose
// presence it receives (XEP-0163 section 4.3.3), with the time it was
// published (XEP-0203).
func (p *PEP) sendLast(s *Session, features map[string]bool) {
	ctx := p.srv.ctx
	var nodes []string
	for f := range features {
		if n, ok := strings.CutSuffix(f, "+notify"); ok {
			nodes = append(nodes, n)
		}
	}
	slices.Sort(nodes)
	for _, name := range nodes {
		owners, err := p.svc.Owners(ctx, name)
		if err != nil {
			p.srv.log.Error("PEP owners", "node", name, "err", err)
			continue
		}
		for _, owner := range owners {
			if owner != s.bare {
				ok, err := p.srv.cfg.Roster.CanSee(ctx, s.bare, owner)
				if err != nil || !ok {
					continue
				}
			}
			n, err := p.svc.Lookup(ctx, owner, name)
			if err != nil || n.Config.SendLast() != pubsub.SendOnSubAndPresence || !n.Config.DeliverNotifications() || !p.visible(n, s) {
				continue
			}
			it, ok, err := p.svc.Last(ctx, owner, name)
			if err != nil || !ok {
				continue
			}
			m := p.notification(n, p.itemElement(nsPubsubEvent, it, n.Config.DeliverPayloads()), s.full, owner != s.bare, &it.Stamp)
			s.send(m.Bytes(nsClient))
		}
	}
}

// Gone implements PresenceWatcher.
func (p *PEP) Gone(s *Session) {
	p.mu.Lock()
	delete(p.sessions, s)
	p.mu.Unlock()
}

// parseForm reads a data form (XEP-0004): its FORM_TYPE and the first
// value of each other field.
func parseForm(x *Element) (formType string, fields map[string]string) {
	fields = make(map[string]string)
	for _, f := range x.Elements() {
		if f.Local != "field" || f.Space != nsXData {
			continue
		}
		v := f.ChildText(nsXData, "value")
		if f.Get("var") == "FORM_TYPE" {
			formType = v
			continue
		}
		fields[f.Get("var")] = v
	}
	return formType, fields
}

// configForm renders a node configuration form (type "form" or "result").
func configForm(cfg pubsub.Config, typ string) *Element {
	x := NewElement(nsXData, "x", "type", typ)
	x.Add(NewElement(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").Add(NewElement(nsXData, "value").AddText(nsNodeConfig)))
	for _, f := range pubsub.Fields {
		fe := NewElement(nsXData, "field", "var", f.Var, "type", string(f.Kind), "label", f.Label)
		for _, o := range f.Options {
			fe.Add(NewElement(nsXData, "option").Add(NewElement(nsXData, "value").AddText(o)))
		}
		if v, ok := cfg[f.Var]; ok {
			fe.Add(NewElement(nsXData, "value").AddText(v))
		}
		x.Add(fe)
	}
	return x
}

// pepOwner handles the http://jabber.org/protocol/pubsub#owner namespace:
// configuration, default configuration, deletion, purge, affiliations and
// subscriptions of the owner's nodes (XEP-0060 section 8).
type pepOwner struct{ p *PEP }

func (o pepOwner) Namespace() string                    { return nsPubsubOwner }
func (o pepOwner) Features() (account, server []string) { return nil, nil }

func (o pepOwner) HandleIQ(s *Session, el, ps *Element, owner jid.JID) bool {
	p := o.p
	op := ps.FirstChild()
	if op == nil {
		s.send(errorReply(el, "bad-request", "an empty <pubsub/>"))
		return true
	}
	if owner != s.bare {
		s.send(errorReply(el, "forbidden", "only the owner manages these nodes"))
		return true
	}
	ctx := s.ctx()
	get := el.Get("type") == "get"
	node := op.Get("node")
	wrap := func(e *Element) *Element { return NewElement(nsPubsubOwner, "pubsub").Add(e) }
	switch {
	case get && op.Local == "default":
		p.reply(s, el, nil, wrap(NewElement(nsPubsubOwner, "default").Add(configForm(pubsub.DefaultConfig(), "form"))))
	case get && op.Local == "configure":
		n, err := p.svc.Node(ctx, owner, s.full, node)
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		p.reply(s, el, nil, wrap(NewElement(nsPubsubOwner, "configure", "node", node).Add(configForm(n.Config, "form"))))
	case !get && op.Local == "configure":
		x := op.Child(nsXData, "x")
		if x == nil {
			s.send(errorReply(el, "bad-request", "configure carries a data form"))
			return true
		}
		if x.Get("type") == "cancel" {
			p.reply(s, el, nil)
			return true
		}
		typ, fields := parseForm(x)
		if typ != "" && typ != nsNodeConfig {
			s.send(errorReply(el, "bad-request", "the FORM_TYPE is "+nsNodeConfig))
			return true
		}
		_, err := p.svc.Configure(ctx, owner, s.full, node, fields)
		p.reply(s, el, err)
	case !get && op.Local == "delete":
		n, err := p.svc.Delete(ctx, owner, s.full, node)
		p.reply(s, el, err)
		if err == nil && n.Config.NotifyDelete() {
			p.notifyDelete(n)
		}
	case !get && op.Local == "purge":
		n, err := p.svc.Purge(ctx, owner, s.full, node)
		p.reply(s, el, err)
		if err == nil && n.Config.NotifyRetract() {
			p.notifyPurge(n)
		}
	case get && op.Local == "affiliations":
		n, err := p.svc.Node(ctx, owner, s.full, node)
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		out := NewElement(nsPubsubOwner, "affiliations", "node", node)
		out.Add(NewElement(nsPubsubOwner, "affiliation", "jid", owner.String(), "affiliation", "owner"))
		keys := slices.Sorted(maps.Keys(n.Affiliations))
		for _, k := range keys {
			out.Add(NewElement(nsPubsubOwner, "affiliation", "jid", k, "affiliation", n.Affiliations[k]))
		}
		p.reply(s, el, nil, wrap(out))
	case !get && op.Local == "affiliations":
		changes := make(map[string]string)
		for _, a := range op.Elements() {
			if a.Local == "affiliation" {
				changes[a.Get("jid")] = a.Get("affiliation")
			}
		}
		_, err := p.svc.SetAffiliations(ctx, owner, s.full, node, changes)
		p.reply(s, el, err)
	case get && op.Local == "subscriptions":
		n, err := p.svc.Node(ctx, owner, s.full, node)
		if err != nil {
			p.reply(s, el, err)
			return true
		}
		out := NewElement(nsPubsubOwner, "subscriptions", "node", node)
		for _, k := range slices.Sorted(maps.Keys(n.Subscriptions)) {
			out.Add(NewElement(nsPubsubOwner, "subscription", "jid", k, "subscription", pubsub.SubscriptionState(n.Subscriptions[k])))
		}
		p.reply(s, el, nil, wrap(out))
	default:
		s.send(errorReply(el, "feature-not-implemented", "<"+op.Local+"/> is not supported here"))
	}
	return true
}

// notifyDelete tells subscribers a node is gone (XEP-0060 section 8.4.2).
func (p *PEP) notifyDelete(n pubsub.Node) {
	p.eventToAll(n, NewElement(nsPubsubEvent, "delete", "node", n.Name))
}

// notifyPurge tells subscribers a node was purged (XEP-0060 section 8.5.2).
func (p *PEP) notifyPurge(n pubsub.Node) {
	p.eventToAll(n, NewElement(nsPubsubEvent, "purge", "node", n.Name))
}

// eventToAll sends a node-level event (not an <items/> one) to the same
// recipients as notify.
func (p *PEP) eventToAll(n pubsub.Node, ev *Element) {
	seen := map[*Session]bool{}
	send := func(r *Session) {
		if seen[r] || !r.isAvailable() {
			return
		}
		seen[r] = true
		m := NewElement(nsClient, "message", "from", n.Owner.String(), "to", r.full.String(), "type", n.Config.NotificationType(), "id", randomID(9))
		m.Add(NewElement(nsPubsubEvent, "event").Add(ev))
		r.send(m.Bytes(nsClient))
	}
	for _, r := range p.srv.router.Resources(n.Owner.String()) {
		if p.wants(r, n.Name) {
			send(r)
		}
	}
	for who := range n.Subscriptions {
		if j, err := jid.Parse(who); err == nil && n.Delivers(who) {
			for _, r := range p.srv.router.Resources(j.Bare().String()) {
				if j.IsBare() || r.full == j {
					send(r)
				}
			}
		}
	}
}

// --- Entity capabilities (XEP-0115) ---

// capsHash computes the verification string of a disco#info result
// (XEP-0115 section 5.1, SHA-1); ok is false for a result that section
// 5.4 says not to trust (duplicate identities, features or forms).
func capsHash(q *Element) (string, bool) {
	var ids, features []string
	type form struct {
		typ    string
		fields []string
	}
	var forms []form
	for _, c := range q.Elements() {
		switch {
		case c.Space == nsDiscoI && c.Local == "identity":
			lang := ""
			for _, a := range c.Attr {
				if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
					lang = a.Value
				}
			}
			ids = append(ids, c.Get("category")+"/"+c.Get("type")+"/"+lang+"/"+c.Get("name"))
		case c.Space == nsDiscoI && c.Local == "feature":
			features = append(features, c.Get("var"))
		case c.Space == nsXData && c.Local == "x":
			var f form
			types := 0
			for _, fe := range c.Elements() {
				if fe.Local != "field" {
					continue
				}
				var vals []string
				for _, v := range fe.Elements() {
					if v.Local == "value" {
						vals = append(vals, v.Text())
					}
				}
				if fe.Get("var") == "FORM_TYPE" {
					types++
					if len(vals) > 0 {
						f.typ = vals[0]
					}
					continue
				}
				slices.Sort(vals)
				f.fields = append(f.fields, fe.Get("var")+"<"+strings.Join(append(vals, ""), "<"))
			}
			if types > 1 {
				return "", false
			}
			if f.typ == "" {
				continue // forms without FORM_TYPE are ignored
			}
			slices.Sort(f.fields)
			forms = append(forms, f)
		}
	}
	slices.Sort(ids)
	slices.Sort(features)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) || len(slices.Compact(slices.Clone(features))) != len(features) {
		return "", false
	}
	slices.SortFunc(forms, func(a, b form) int { return strings.Compare(a.typ, b.typ) })
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + "<")
	}
	for _, f := range features {
		b.WriteString(f + "<")
	}
	for i, f := range forms {
		if i > 0 && forms[i-1].typ == f.typ {
			return "", false
		}
		b.WriteString(f.typ + "<")
		for _, fl := range f.fields {
			b.WriteString(fl)
		}
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:]), true
}

// capsVer is the server's own verification string, over serverInfo.
func (srv *Server) capsVer() string {
	srv.ext.mu.Lock()
	v := srv.ext.caps
	srv.ext.mu.Unlock()
	if v != "" {
		return v
	}
	v, _ = capsHash(srv.serverInfo())
	srv.ext.mu.Lock()
	srv.ext.caps = v
	srv.ext.mu.Unlock()
	return v
}

// capsFeature is the server's capabilities as a stream feature (XEP-0115
// section 6.3).
func (srv *Server) capsFeature() string {
	return `<c xmlns="` + nsCaps + `" hash="sha-1" node="` + capsNode + `" ver="` + AttrEscape(srv.capsVer()) + `"/>`
}

// --- Avatars: XEP-0084 <-> XEP-0153 (XEP-0398) ---

// avatarHash returns owner's avatar SHA-1 from the stored vCard ("" when
// none), cached.
func (p *PEP) avatarHash(owner jid.JID) string {
	if v, ok := p.avatars.Load(owner.String()); ok {
		return v.(string)
	}
	h := ""
	if v := p.loadVCard(owner); v != nil {
		if bin, _ := vcardPhoto(v); bin != nil {
			sum := sha1.Sum(bin)
			h = hex.EncodeToString(sum[:])
		}
	}
	p.avatars.Store(owner.String(), h)
	return h
}

func (p *PEP) loadVCard(owner jid.JID) *Element {
	b, err := p.srv.cfg.Store.UserData(p.srv.ctx, owner.Address(), "vcard")
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			p.srv.log.Error("reading vCard", "user", owner.String(), "err", err)
		}
		return nil
	}
	v, err := parseElement(b)
	if err != nil {
		return nil
	}
	return v
}

// vcardPhoto returns the decoded PHOTO of a vCard and its TYPE.
func vcardPhoto(v *Element) ([]byte, string) {
	ph := v.Child(nsVCard, "PHOTO")
	if ph == nil {
		return nil, ""
	}
	bin, err := base64.StdEncoding.DecodeString(stripSpace(ph.ChildText(nsVCard, "BINVAL")))
	if err != nil || len(bin) == 0 {
		return nil, ""
	}
	return bin, strings.TrimSpace(ph.ChildText(nsVCard, "TYPE"))
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

// injectAvatarHash applies XEP-0398 section 4 to an available presence.
func (p *PEP) injectAvatarHash(owner jid.JID, el *Element) {
	x := el.Child(nsVCardUpdate, "x")
	if x != nil {
		if ph := x.Child(nsVCardUpdate, "photo"); ph != nil {
			if strings.TrimSpace(ph.Text()) == "" {
				return // the client says: no avatar, or not ready yet
			}
			if h := p.avatarHash(owner); h != "" {
				ph.Children = []Node{{Text: h}}
			}
			return
		}
		photo := NewElement(nsVCardUpdate, "photo")
		if h := p.avatarHash(owner); h != "" {
			photo.AddText(h)
		}
		x.Add(photo)
		return
	}
	if h := p.avatarHash(owner); h != "" {
		el.Add(NewElement(nsVCardUpdate, "x").Add(NewElement(nsVCardUpdate, "photo").AddText(h)))
	}
}

// avatarToVCard puts the avatar a metadata item points at into the
// owner's vCard PHOTO (XEP-0398 section 3.1), and updates the hash in the
// owner's presence.
func (p *PEP) avatarToVCard(s *Session, owner jid.JID, payload []byte) {
	meta, err := parseElement(payload)
	if err != nil || meta.Space != nsAvatarMeta {
		return
	}
	var bin []byte
	typ := ""
	for _, info := range meta.Elements() {
		if info.Local != "info" || info.Get("url") != "" {
			continue
		}
		_, items, err := p.svc.Items(s.ctx(), owner, owner, nsAvatarData, []string{info.Get("id")}, 1)
		if err != nil || len(items) == 0 {
			continue
		}
		data, err := parseElement(items[0].Payload)
		if err != nil {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(stripSpace(data.Text()))
		sum := sha1.Sum(b)
		if err != nil || hex.EncodeToString(sum[:]) != strings.ToLower(info.Get("id")) {
			continue // SHOULD verify: an id that is not the data's hash is not used
		}
		bin, typ = b, info.Get("type")
		break
	}
	if bin == nil && len(meta.Elements()) > 0 {
		return // nothing usable: leave the vCard as it is
	}
	v := p.loadVCard(owner)
	if v == nil {
		v = NewElement(nsVCard, "vCard")
	}
	v.RemoveChildren(nsVCard, "PHOTO")
	h := ""
	if bin != nil {
		ph := NewElement(nsVCard, "PHOTO")
		if typ != "" {
			ph.Add(NewElement(nsVCard, "TYPE").AddText(typ))
		}
		v.Add(ph.Add(NewElement(nsVCard, "BINVAL").AddText(base64.StdEncoding.EncodeToString(bin))))
		sum := sha1.Sum(bin)
		h = hex.EncodeToString(sum[:])
	}
	if err := p.srv.cfg.Store.PutUserData(s.ctx(), owner.Address(), "vcard", v.Bytes("")); err != nil {
		p.srv.log.Error("storing the vCard of a PEP avatar", "user", owner.String(), "err", err)
		return
	}
	p.setAvatarHash(owner, h)
}

// setAvatarHash records a new avatar hash and, when it changed, sends the
// owner's available presence again with it (XEP-0153 section 4.2 rule
// 4, on the client's behalf).
func (p *PEP) setAvatarHash(owner jid.JID, h string) {
	old, _ := p.avatars.Swap(owner.String(), h)
	if old == h {
		return
	}
	for _, r := range p.srv.router.Resources(owner.String()) {
		b := r.currentPresence()
		if b == nil {
			continue
		}
		el, err := parseElement(b)
		if err != nil {
			continue
		}
		if x := el.Child(nsVCardUpdate, "x"); x != nil {
			if ph := x.Child(nsVCardUpdate, "photo"); ph != nil && strings.TrimSpace(ph.Text()) != "" {
				ph.Children = nil
				ph.AddText(h)
			} else if ph == nil {
				x.Add(NewElement(nsVCardUpdate, "photo").AddText(h))
			}
		} else if h != "" {
			el.Add(NewElement(nsVCardUpdate, "x").Add(NewElement(nsVCardUpdate, "photo").AddText(h)))
		}
		el.Set("from", r.full.String())
		p.srv.broadcast(r, el, "")
	}
}

// VCardSet implements VCardWatcher: a vCard PHOTO becomes the PEP avatar
// (XEP-0398 section 3.2), data first, then metadata, each notified.
func (p *PEP) VCardSet(s *Session, v *Element) {
	bin, typ := vcardPhoto(v)
	h := ""
	if bin != nil {
		sum := sha1.Sum(bin)
		h = hex.EncodeToString(sum[:])
	}
	if old := p.avatarHash(s.bare); old == h {
		return
	}
	meta := NewElement(nsAvatarMeta, "metadata")
	if bin != nil {
		data := NewElement(nsAvatarData, "data").AddText(base64.StdEncoding.EncodeToString(bin))
		res, err := p.publishAs(s, s.bare, s.full, pubsub.Publish{Node: nsAvatarData, Item: pubsub.Item{ID: h, Payload: data.Bytes("")}}, false)
		if err != nil {
			p.srv.log.Error("publishing the vCard avatar", "user", s.bare.String(), "err", err)
			return
		}
		p.notify(res.Node, p.itemElement(nsPubsubEvent, res.Item, res.Node.Config.DeliverPayloads()), s.full)
		if typ == "" {
			typ = "image/png"
		}
		meta.Add(NewElement(nsAvatarMeta, "info", "id", h, "bytes", strconv.Itoa(len(bin)), "type", typ))
	}
	id := h
	if id == "" {
		id = "current"
	}
	res, err := p.publishAs(s, s.bare, s.full, pubsub.Publish{Node: nsAvatarMeta, Item: pubsub.Item{ID: id, Payload: meta.Bytes("")}}, false)
	if err != nil {
		p.srv.log.Error("publishing the vCard avatar metadata", "user", s.bare.String(), "err", err)
		return
	}
	p.notify(res.Node, p.itemElement(nsPubsubEvent, res.Item, res.Node.Config.DeliverPayloads()), s.full)
	p.setAvatarHash(s.bare, h)
}
