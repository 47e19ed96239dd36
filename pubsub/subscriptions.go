package pubsub

import (
	"context"
	"maps"
	"strings"

	"github.com/parleyhq/parley/jid"
)

// A subscription's stored state is "subscribed", followed by its options
// when any differ from the defaults: "subscribed;deliver=0".
const (
	subscribed = "subscribed"
	noDeliver  = ";deliver=0"
)

// SubscriptionState returns the state XEP-0060 names ("subscribed") of a
// stored Subscriptions value, without its options.
func SubscriptionState(v string) string {
	st, _, _ := strings.Cut(v, ";")
	return st
}

// Delivers reports whether the subscription of who (as stored, bare or
// full) wants notifications: pubsub#deliver is on unless the subscriber
// turned it off (XEP-0060 section 6.3).
func (n Node) Delivers(who string) bool {
	v, ok := n.Subscriptions[who]
	return ok && SubscriptionState(v) == subscribed && !strings.Contains(v, noDeliver)
}

// SubscribeOptionsForm is the FORM_TYPE of subscription options.
const SubscribeOptionsForm = "http://jabber.org/protocol/pubsub#subscribe_options"

// SubOptions are the subscription options supported (XEP-0060 section
// 6.3, the pubsub#subscribe_options form): only pubsub#deliver, whether
// notifications are sent at all.
type SubOptions struct {
	Deliver bool
}

// SubscriptionOptions returns who's options on node; not subscribed is
// unexpected-request with <not-subscribed/> (section 6.3.4.2).
func (s *Service) SubscriptionOptions(ctx context.Context, owner, requester, who jid.JID, node string) (SubOptions, error) {
	if who.Bare() != requester.Bare() {
		return SubOptions{}, forbidden("you can only see your own subscription options")
	}
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return SubOptions{}, err
	}
	if _, ok := n.Subscriptions[who.String()]; !ok {
		return SubOptions{}, newErr(ErrNotSubscribed, "unexpected-request", "not-subscribed", "you are not subscribed")
	}
	return SubOptions{Deliver: n.Delivers(who.String())}, nil
}

// SetSubscriptionOptions changes who's options on node from submitted
// form fields (section 6.3.5): an unknown field or a value that is not a
// boolean is bad-request with <invalid-options/>.
func (s *Service) SetSubscriptionOptions(ctx context.Context, owner, requester, who jid.JID, node string, fields map[string]string) error {
	if who.Bare() != requester.Bare() {
		return forbidden("you can only change your own subscription options")
	}
	deliver := true
	for k, v := range fields {
		switch k {
		case "FORM_TYPE":
			if v != SubscribeOptionsForm {
				return badRequest("invalid-options", "the form's FORM_TYPE must be "+SubscribeOptionsForm)
			}
		case "pubsub#deliver":
			switch v {
			case "1", "true":
			case "0", "false":
				deliver = false
			default:
				return badRequest("invalid-options", "pubsub#deliver is a boolean")
			}
		default:
			return badRequest("invalid-options", k+" is not a supported subscription option")
		}
	}
	defer s.lock(owner)()
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return err
	}
	if _, ok := n.Subscriptions[who.String()]; !ok {
		return newErr(ErrNotSubscribed, "unexpected-request", "not-subscribed", "you are not subscribed")
	}
	subs := maps.Clone(n.Subscriptions)
	subs[who.String()] = subscribed
	if !deliver {
		subs[who.String()] = subscribed + noDeliver
	}
	n.Subscriptions = subs
	if err := s.opt.Store.PutPubsubNode(ctx, n.record()); err != nil {
		return storeErr(err)
	}
	return nil
}

// Subscription is one of an entity's subscriptions.
type Subscription struct {
	Node, JID, State string
}

// Subscriptions returns requester's subscriptions (by bare or full JID)
// to owner's nodes, or to one node when node is not "" (XEP-0060 section
// 5.6).
func (s *Service) Subscriptions(ctx context.Context, owner, requester jid.JID, node string) ([]Subscription, error) {
	nodes, err := s.visibleNodes(ctx, owner, requester, node)
	if err != nil {
		return nil, err
	}
	var out []Subscription
	for _, n := range nodes {
		for who, v := range n.Subscriptions {
			if j, err := jid.Parse(who); err == nil && j.Bare() == requester.Bare() {
				out = append(out, Subscription{Node: n.Name, JID: who, State: SubscriptionState(v)})
			}
		}
	}
	return out, nil
}

// Affiliation is requester's affiliation with one node.
type Affiliation struct {
	Node, Affiliation string
}

// Affiliations returns requester's affiliations with owner's nodes (or
// with one node), as XEP-0060 section 5.7 lists them: "owner" for the
// owner, and member, publisher or outcast where the owner set one.
func (s *Service) Affiliations(ctx context.Context, owner, requester jid.JID, node string) ([]Affiliation, error) {
	var nodes []Node
	if node != "" {
		n, err := s.node(ctx, owner, node)
		if err != nil {
			return nil, err
		}
		nodes = []Node{n}
	} else {
		recs, err := s.opt.Store.PubsubNodes(ctx, owner.String())
		if err != nil {
			return nil, storeErr(err)
		}
		for _, r := range recs {
			nodes = append(nodes, toNode(owner, r))
		}
	}
	var out []Affiliation
	for _, n := range nodes {
		switch {
		case isOwner(n, requester):
			out = append(out, Affiliation{Node: n.Name, Affiliation: "owner"})
		case n.Affiliations[requester.Bare().String()] != "":
			out = append(out, Affiliation{Node: n.Name, Affiliation: n.Affiliations[requester.Bare().String()]})
		}
	}
	return out, nil
}

func (s *Service) visibleNodes(ctx context.Context, owner, requester jid.JID, node string) ([]Node, error) {
	if node == "" {
		return s.Nodes(ctx, owner, requester)
	}
	n, err := s.node(ctx, owner, node)
	if err != nil {
		return nil, err
	}
	if err := s.Allowed(ctx, n, requester); err != nil {
		return nil, err
	}
	return []Node{n}, nil
}
