package pubsub_test

import (
	"context"
	"errors"
	"testing"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/pubsub"
	"github.com/parleyhq/parley/storage/memstore"
)

// contacts: bob sees alice's presence, carol does not.
type contacts struct{}

func (contacts) CanSee(_ context.Context, watcher, owner jid.JID) (bool, error) {
	return watcher.Local() == "bob", nil
}

var (
	alice = jid.MustParse("alice@example.com")
	desk  = jid.MustParse("alice@example.com/desk")
	bob   = jid.MustParse("bob@example.com/phone")
	carol = jid.MustParse("carol@example.com/pc")
)

func newService(t *testing.T) *pubsub.Service {
	return pubsub.New(pubsub.Options{Store: memstore.New(), Presence: contacts{}, MaxItems: 50})
}

func TestPublishOptionsArePreconditions(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	open := map[string]string{pubsub.FieldAccessModel: "open"}
	p, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "urn:xmpp:omemo:2:devices", Item: pubsub.Item{ID: "current", Payload: []byte("<devices/>")}, Options: open})
	if err != nil || !p.Created || p.Node.Config.AccessModel() != "open" {
		t.Fatalf("auto-create with options: %+v, %v", p, err)
	}
	if _, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "urn:xmpp:omemo:2:devices", Item: pubsub.Item{ID: "current"}, Options: open}); err != nil {
		t.Fatalf("matching options: %v", err)
	}
	_, err = s.Publish(ctx, alice, desk, pubsub.Publish{Node: "urn:xmpp:omemo:2:devices", Item: pubsub.Item{ID: "current"},
		Options: map[string]string{pubsub.FieldAccessModel: "presence"}})
	var pe *pubsub.Error
	if !errors.Is(err, pubsub.ErrPrecondition) || !errors.As(err, &pe) || pe.Cond != "conflict" || pe.App != "precondition-not-met" {
		t.Fatalf("mismatched options: %v", err)
	}
	// Booleans compare by value, not spelling.
	if _, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "n", Item: pubsub.Item{ID: "1"}, Options: map[string]string{pubsub.FieldPersistItems: "true", pubsub.FieldMaxItems: "max"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "n", Item: pubsub.Item{ID: "2"}, Options: map[string]string{pubsub.FieldPersistItems: "1"}}); err != nil {
		t.Fatalf("true and 1: %v", err)
	}
	if _, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "n", Options: map[string]string{"pubsub#unknown": "x"}}); !errors.Is(err, pubsub.ErrBadRequest) {
		t.Fatalf("unknown option: %v", err)
	}
	if _, err := s.Publish(ctx, bob.Bare(), desk, pubsub.Publish{Node: "n"}); !errors.Is(err, pubsub.ErrForbidden) {
		t.Fatalf("publishing to another account: %v", err)
	}
}

func TestAccessModels(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	for node, model := range map[string]string{"o": "open", "p": "presence", "w": "whitelist"} {
		if _, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: node, Item: pubsub.Item{ID: "x"}, Options: map[string]string{pubsub.FieldAccessModel: model}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(node string, who jid.JID, want error) {
		t.Helper()
		_, items, err := s.Items(ctx, alice, who, node, nil, 0)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("%s reading %s: %v, want %v", who, node, err, want)
		}
		if want == nil && len(items) != 1 {
			t.Errorf("%s reading %s: %d items", who, node, len(items))
		}
	}
	check("o", carol, nil)
	check("p", bob, nil)
	check("p", carol, pubsub.ErrNotAuthorized)
	check("w", bob, pubsub.ErrNotAuthorized)
	check("w", desk, nil)
	if _, err := s.SetAffiliations(ctx, alice, desk, "w", map[string]string{"bob@example.com": pubsub.Member}); err != nil {
		t.Fatal(err)
	}
	check("w", bob, nil)
	nodes, _ := s.Nodes(ctx, alice, carol)
	if len(nodes) != 1 || nodes[0].Name != "o" {
		t.Errorf("carol may list %v", nodes)
	}
}

func TestMaxItems(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	for i, id := range []string{"a", "b", "c", "d"} {
		p, err := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "n", Item: pubsub.Item{ID: id}, Options: map[string]string{pubsub.FieldMaxItems: "2"}})
		if err != nil {
			t.Fatal(err)
		}
		if i >= 2 && len(p.Dropped) != 1 {
			t.Errorf("publish %s dropped %v", id, p.Dropped)
		}
	}
	_, items, _ := s.Items(ctx, alice, desk, "n", nil, 0)
	if len(items) != 2 || items[0].ID != "d" {
		t.Errorf("items %+v", items)
	}
	if _, err := s.Configure(ctx, alice, desk, "n", map[string]string{pubsub.FieldMaxItems: "51"}); !errors.Is(err, pubsub.ErrBadConfig) {
		t.Errorf("max_items above the limit: %v", err)
	}
	// Default config: presence access, one item.
	p, _ := s.Publish(ctx, alice, desk, pubsub.Publish{Node: "urn:xmpp:avatar:metadata", Item: pubsub.Item{ID: "1"}})
	if p.Node.Config.AccessModel() != "presence" || p.Node.Config.MaxItems() != 1 || p.Node.Config.SendLast() != "on_sub_and_presence" {
		t.Errorf("defaults %v", p.Node.Config)
	}
}
