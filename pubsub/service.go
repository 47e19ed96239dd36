package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Affiliations other than the owner's (XEP-0060 section 4.1).
const (
	Member    = "member"
	Publisher = "publisher"
	Outcast   = "outcast"
)

// Node is one node of an account's service.
type Node struct {
	Owner  jid.JID
	Name   string
	Config Config
	// Affiliations maps bare JIDs to Member, Publisher or Outcast.
	Affiliations map[string]string
	// Subscriptions maps JIDs (bare or full) to "subscribed".
	Subscriptions map[string]string
}

// Item is a published item; Payload is the serialised XML of its one
// payload element, opaque here.
type Item struct {
	ID        string
	Publisher jid.JID
	Stamp     time.Time
	Payload   []byte
}

// PresenceChecker says whether watcher receives owner's presence:
// roster.Service is one.
type PresenceChecker interface {
	CanSee(ctx context.Context, watcher, owner jid.JID) (bool, error)
}

// Options configures a Service.
type Options struct {
	// Store keeps nodes and items. Required.
	Store storage.Pubsub
	// Presence decides the presence and roster access models. Required.
	Presence PresenceChecker
	// Blocked, when set, reports whether owner blocks other (XEP-0191):
	// a blocked entity is refused every node.
	Blocked func(owner, other jid.JID) bool
	// MaxItems is the most items a node keeps, and what max_items "max"
	// means (default 1000).
	MaxItems int
	// MaxPayload is the largest item payload in bytes (default 196608,
	// room for an avatar within the default stanza size).
	MaxPayload int
}

// Service is the logic of personal pubsub (XEP-0163) on user accounts:
// nodes, their configuration and access models, items, subscriptions. It
// knows nothing of XML or sessions: the edge decodes requests, calls the
// Service, and sends the notifications the results call for.
//
// A Service is safe for concurrent use; changes to one account's nodes
// are serialised.
type Service struct {
	opt   Options
	locks [64]sync.Mutex
}

// New returns a Service. It panics when Store or Presence is nil.
func New(opt Options) *Service {
	if opt.Store == nil || opt.Presence == nil {
		panic("pubsub: Options need Store and Presence")
	}
	if opt.MaxItems <= 0 {
		opt.MaxItems = 1000
	}
	if opt.MaxPayload <= 0 {
		opt.MaxPayload = 196608
	}
	return &Service{opt: opt}
}

// MaxItems is the most items a node keeps.
func (s *Service) MaxItems() int { return s.opt.MaxItems }

func (s *Service) lock(owner jid.JID) func() {
	k := owner.String()
	h := uint32(2166136261)
	for i := 0; i < len(k); i++ {
		h ^= uint32(k[i])
		h *= 16777619
	}
	mu := &s.locks[h%uint32(len(s.locks))]
	mu.Lock()
	return mu.Unlock
}

func toNode(owner jid.JID, r storage.PubsubNode) Node {
	n := Node{Owner: owner, Name: r.Name, Config: Config(r.Config),
		Affiliations: r.Affiliations, Subscriptions: r.Subscriptions}
	if n.Config == nil {
		n.Config = DefaultConfig()
	}
	return n
}

func (n Node) record() storage.PubsubNode {
	return storage.PubsubNode{Owner: n.Owner.String(), Name: n.Name, Config: n.Config,
		Affiliations: n.Affiliations, Subscriptions: n.Subscriptions}
}

func storeErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no such node or item")
	}
	return &Error{Cond: "internal-server-error", Text: "the store failed; try again", kind: fmt.Errorf("%w: %w", ErrStore, err)}
}

func (s *Service) node(ctx context.Context, owner jid.JID, name string) (Node, error) {
	if name == "" {
		return Node{}, badRequest("nodeid-required", "the request names no node")
	}
	r, err := s.opt.Store.PubsubNode(ctx, owner.String(), name)
	if err != nil {
		return Node{}, storeErr(err)
	}
	return toNode(owner, r), nil
}

func isOwner(n Node, who jid.JID) bool { return who.Bare() == n.Owner.Bare() }

// Allowed reports whether requester may subscribe to n and retrieve its
// items, with the error XEP-0060 section 6.1.3 gives when not.
func (s *Service) Allowed(ctx context.Context, n Node, requester jid.JID) error {
	if isOwner(n, requester) {
		return nil
	}
	bare := requester.Bare()
	if n.Affiliations[bare.String()] == Outcast || (s.opt.Blocked != nil && s.opt.Blocked(n.Owner, bare)) {
		return forbidden("the owner does not share this node with you")
	}
	switch n.Config.AccessModel() {
	case Open:
		return nil
	case Presence, Roster:
		// The roster model is the presence model here: a personal
		// service does not configure roster groups.
		ok, err := s.opt.Presence.CanSee(ctx, bare, n.Owner)
		if err != nil {
			return storeErr(err)
		}
		if !ok {
			if n.Config.AccessModel() == Roster {
				return newErr(ErrNotAuthorized, "not-authorized", "not-in-roster-group", "only contacts may see this node")
			}
			return newErr(ErrNotAuthorized, "not-authorized", "presence-subscription-required", "only those who see the owner's presence may see this node")
		}
		return nil
	case Whitelist:
		if a := n.Affiliations[bare.String()]; a == Member || a == Publisher {
			return nil
		}
		return newErr(ErrNotAuthorized, "not-allowed", "closed-node", "this node is private")
	}
	return forbidden("unknown access model")
}

// checkConfig normalises submitted fields into cfg.
func (s *Service) applyConfig(cfg Config, fields map[string]string) error {
	for name, v := range fields {
		norm, err := Normalize(name, v, s.opt.MaxItems)
		if err != nil {
			return &Error{Cond: "not-acceptable", Text: err.Error(), kind: err}
		}
		cfg[name] = norm
	}
	return nil
}

func newItemID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// keep is how many items the store keeps for n.
func (s *Service) keep(n Node) int {
	if !n.Config.PersistItems() {
		return 1 // the last item, for send_last_published_item
	}
	if m := n.Config.MaxItems(); m > 0 {
		return m
	}
	return s.opt.MaxItems
}

// Publish is a publication request.
type Publish struct {
	Node string
	// Item.ID may be empty: the service then makes one. Publisher and
	// Stamp are set by the service.
	Item Item
	// Options are the publish-options fields (XEP-0060 section 7.1.5),
	// each a precondition on the node's configuration; nil for none.
	Options map[string]string
}

// Published is the outcome of Publish.
type Published struct {
	Node    Node
	Item    Item
	Created bool     // the node was created by this publication
	Dropped []string // items dropped to respect max_items
}

// Publish stores an item (XEP-0060 section 7.1) published by the owner
// (any of its resources), creating the node when it does not exist
// (auto-create) with the default configuration changed by the
// publish-options; on an existing node each option must equal the
// configuration, or the publication fails with conflict and
// precondition-not-met.
func (s *Service) Publish(ctx context.Context, owner, publisher jid.JID, p Publish) (Published, error) {
	var out Published
	if p.Node == "" {
		return out, badRequest("nodeid-required", "publish names no node")
	}
	if publisher.Bare() != owner.Bare() {
		return out, forbidden("only the account owner publishes here")
	}
	if len(p.Item.Payload) > s.opt.MaxPayload {
		return out, newErr(ErrPayloadTooBig, "not-acceptable", "payload-too-big", fmt.Sprintf("payloads are limited to %d bytes", s.opt.MaxPayload))
	}
	want := Config{}
	if err := s.applyConfig(want, p.Options); err != nil {
		var pe *Error
		errors.As(err, &pe)
		return out, badRequest("", "publish-options: "+pe.Text)
	}
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, p.Node)
	switch {
	case errors.Is(err, ErrNotFound):
		n = Node{Owner: owner.Bare(), Name: p.Node, Config: DefaultConfig()}
		maps.Copy(n.Config, want)
		if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
			return out, storeErr(err)
		}
		out.Created = true
	case err != nil:
		return out, err
	default:
		for name, v := range want {
			if n.Config[name] != v {
				e := newErr(ErrPrecondition, "conflict", "precondition-not-met",
					fmt.Sprintf("the node's %s is %q, not %q", name, n.Config[name], v))
				return out, e
			}
		}
	}
	it := p.Item
	if it.ID == "" {
		it.ID = newItemID()
	}
	it.Publisher = publisher
	it.Stamp = time.Now().UTC()
	dropped, err := s.opt.Store.PutPubsubItem(ctx, owner.String(), n.Name, storage.PubsubItem{
		ID: it.ID, Publisher: publisher.String(), Stamp: it.Stamp, Payload: it.Payload,
	}, s.keep(n))
	if err != nil {
		return out, storeErr(err)
	}
	out.Node, out.Item, out.Dropped = n, it, dropped
	return out, nil
}

// Retract deletes an item (XEP-0060 section 7.2). It returns the node, so
// the edge can notify subscribers when asked to or configured to.
func (s *Service) Retract(ctx context.Context, owner, requester jid.JID, node, id string) (Node, error) {
	if id == "" {
		return Node{}, badRequest("item-required", "retract needs an item with an id")
	}
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if !isOwner(n, requester) {
		return n, forbidden("only the owner retracts items here")
	}
	if err := s.opt.Store.DeletePubsubItem(ctx, owner.String(), node, id); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

func fromStored(items []storage.PubsubItem) []Item {
	out := make([]Item, 0, len(items))
	for _, it := range items {
		p, _ := jid.Parse(it.Publisher)
		out = append(out, Item{ID: it.ID, Publisher: p, Stamp: it.Stamp, Payload: it.Payload})
	}
	return out
}

// Items returns a node's items newest first (XEP-0060 section 6.5): the
// ones with ids when given, at most max when max > 0, after checking that
// requester may see them.
func (s *Service) Items(ctx context.Context, owner, requester jid.JID, node string, ids []string, max int) (Node, []Item, error) {
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, nil, err
	}
	if err := s.Allowed(ctx, n, requester); err != nil {
		return n, nil, err
	}
	items, err := s.opt.Store.PubsubItems(ctx, owner.String(), node, ids, max)
	if err != nil {
		return n, nil, storeErr(err)
	}
	if len(ids) > 0 && len(items) == 0 {
		return n, nil, notFound("no such item")
	}
	return n, fromStored(items), nil
}

// Last returns the node's newest item, if any, without access checks.
func (s *Service) Last(ctx context.Context, owner jid.JID, node string) (Item, bool, error) {
	items, err := s.opt.Store.PubsubItems(ctx, owner.String(), node, nil, 1)
	if err != nil || len(items) == 0 {
		if errors.Is(err, storage.ErrNotFound) {
			err = nil
		}
		return Item{}, false, err
	}
	return fromStored(items)[0], true, nil
}

// Node returns a node for its owner (configuration, affiliations).
func (s *Service) Node(ctx context.Context, owner, requester jid.JID, node string) (Node, error) {
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if !isOwner(n, requester) {
		return n, forbidden("only the owner sees the configuration")
	}
	return n, nil
}

// Lookup returns a node without access checks, for the edge's own use.
func (s *Service) Lookup(ctx context.Context, owner jid.JID, node string) (Node, error) {
	return s.node(ctx, owner, node)
}

// Nodes returns owner's nodes that requester may see (XEP-0163 section
// 9.2: disco#items lists only those), sorted by name.
func (s *Service) Nodes(ctx context.Context, owner, requester jid.JID) ([]Node, error) {
	recs, err := s.opt.Store.PubsubNodes(ctx, owner.String())
	if err != nil {
		return nil, storeErr(err)
	}
	var out []Node
	for _, r := range recs {
		n := toNode(owner, r)
		if s.Allowed(ctx, n, requester) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Owners returns the accounts that have a node of that name.
func (s *Service) Owners(ctx context.Context, node string) ([]jid.JID, error) {
	names, err := s.opt.Store.PubsubOwners(ctx, node)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]jid.JID, 0, len(names))
	for _, n := range names {
		if j, err := jid.Parse(n); err == nil {
			out = append(out, j)
		}
	}
	return out, nil
}

// Create makes a node (XEP-0060 section 8.1) with the default
// configuration changed by fields; an existing node is a conflict.
func (s *Service) Create(ctx context.Context, owner, requester jid.JID, node string, fields map[string]string) (Node, error) {
	if node == "" {
		return Node{}, newErr(ErrBadRequest, "not-acceptable", "nodeid-required", "instant nodes are not supported; name the node")
	}
	if requester.Bare() != owner.Bare() {
		return Node{}, forbidden("only the account owner creates nodes here")
	}
	n := Node{Owner: owner.Bare(), Name: node, Config: DefaultConfig()}
	if err := s.applyConfig(n.Config, fields); err != nil {
		return n, err
	}
	defer s.lock(owner)()
	if _, err := s.node(ctx, owner, node); err == nil {
		return n, newErr(ErrExists, "conflict", "", "the node exists")
	} else if !errors.Is(err, ErrNotFound) {
		return n, err
	}
	if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

// Configure changes a node's configuration (XEP-0060 section 8.2.4). Items
// beyond a lowered max_items go at the next publication.
func (s *Service) Configure(ctx context.Context, owner, requester jid.JID, node string, fields map[string]string) (Node, error) {
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if !isOwner(n, requester) {
		return n, forbidden("only the owner configures the node")
	}
	cfg := maps.Clone(n.Config)
	if err := s.applyConfig(cfg, fields); err != nil {
		return n, err
	}
	n.Config = cfg
	if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

// Delete removes a node and its items (XEP-0060 section 8.4); the node is
// returned so the edge can notify its subscribers.
func (s *Service) Delete(ctx context.Context, owner, requester jid.JID, node string) (Node, error) {
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if !isOwner(n, requester) {
		return n, forbidden("only the owner deletes the node")
	}
	if err := s.opt.Store.DeletePubsubNode(ctx, owner.String(), node); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

// Purge removes every item of a node (XEP-0060 section 8.5).
func (s *Service) Purge(ctx context.Context, owner, requester jid.JID, node string) (Node, error) {
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if !isOwner(n, requester) {
		return n, forbidden("only the owner purges the node")
	}
	if err := s.opt.Store.PurgePubsubNode(ctx, owner.String(), node); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

// Subscribe subscribes who (the requester's bare or full JID) to a node
// (XEP-0060 section 6.1).
func (s *Service) Subscribe(ctx context.Context, owner, requester, who jid.JID, node string) (Node, error) {
	if who.Bare() != requester.Bare() {
		return Node{}, badRequest("invalid-jid", "you can only subscribe your own address")
	}
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if err := s.Allowed(ctx, n, requester); err != nil {
		return n, err
	}
	subs := maps.Clone(n.Subscriptions)
	if subs == nil {
		subs = make(map[string]string)
	}
	subs[who.String()] = "subscribed"
	n.Subscriptions = subs
	if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

// Unsubscribe ends who's subscription (XEP-0060 section 6.2).
func (s *Service) Unsubscribe(ctx context.Context, owner, requester, who jid.JID, node string) (Node, error) {
	if who.Bare() != requester.Bare() {
		return Node{}, badRequest("invalid-jid", "you can only unsubscribe your own address")
	}
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if _, ok := n.Subscriptions[who.String()]; !ok {
		return n, newErr(ErrNotSubscribed, "unexpected-request", "not-subscribed", "you are not subscribed")
	}
	subs := maps.Clone(n.Subscriptions)
	delete(subs, who.String())
	n.Subscriptions = subs
	if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}

// SetAffiliations changes affiliations (XEP-0060 section 8.9.2): each
// bare JID to Member, Publisher, Outcast or "none" (removed). The owner's
// own affiliation cannot change.
func (s *Service) SetAffiliations(ctx context.Context, owner, requester jid.JID, node string, changes map[string]string) (Node, error) {
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return n, err
	}
	if !isOwner(n, requester) {
		return n, forbidden("only the owner manages affiliations")
	}
	affs := maps.Clone(n.Affiliations)
	if affs == nil {
		affs = make(map[string]string)
	}
	for who, a := range changes {
		j, err := jid.Parse(who)
		if err != nil {
			return n, newErr(ErrBadRequest, "jid-malformed", "", who+": "+err.Error())
		}
		if j.Bare() == owner.Bare() {
			return n, newErr(ErrBadRequest, "not-acceptable", "", "the owner stays the owner")
		}
		switch a {
		case "none":
			delete(affs, j.Bare().String())
		case Member, Publisher, Outcast:
			affs[j.Bare().String()] = a
		default:
			return n, newErr(ErrBadRequest, "bad-request", "", "unknown affiliation "+a)
		}
	}
	n.Affiliations = affs
	if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
		return n, storeErr(err)
	}
	return n, nil
}
