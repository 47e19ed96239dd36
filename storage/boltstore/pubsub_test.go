package boltstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestPubsubConformance(t *testing.T) {
	storagetest.RunPubsubTests(t, func(t *testing.T) *boltstore.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"), nil)
	})
}

// Nodes and items written before a restart are there after it, and new
// items still sort after the old ones.
func TestPubsubSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, path, nil)
	n := storage.PubsubNode{Owner: "alice@example.com", Name: "urn:xmpp:bookmarks:1", Config: map[string]string{"pubsub#access_model": "whitelist"}}
	if err := s.PutPubsubNode(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPubsubItem(ctx, n.Owner, n.Name, storage.PubsubItem{ID: "a", Payload: []byte("<a/>")}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, nil)
	defer s.Close()
	if _, err := s.PutPubsubItem(ctx, n.Owner, n.Name, storage.PubsubItem{ID: "b", Payload: []byte("<b/>")}, 0); err != nil {
		t.Fatal(err)
	}
	items, err := s.PubsubItems(ctx, n.Owner, n.Name, nil, 0)
	if err != nil || len(items) != 2 || items[0].ID != "b" || items[1].ID != "a" {
		t.Fatalf("after reopen: %+v, %v", items, err)
	}
	got, err := s.PubsubNode(ctx, n.Owner, n.Name)
	if err != nil || got.Config["pubsub#access_model"] != "whitelist" {
		t.Fatalf("node after reopen: %+v, %v", got, err)
	}
}
