package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

// PubsubStore is what RunPubsubTests needs: storage.Pubsub and Close. A
// storage.Store is one.
type PubsubStore interface {
	storage.Pubsub
	Close() error
}

// RunPubsubTests checks that the stores made by newStore keep the
// storage.Pubsub contract, under the same rules as RunConformanceTests (a
// fresh empty store per subtest, closed when it ends).
func RunPubsubTests[S PubsubStore](t *testing.T, newStore func(t *testing.T) S) {
	t.Helper()
	open := func(t *testing.T) S {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		fn   func(*testing.T, PubsubStore)
	}{
		{"NodeMissing", testPubsubNodeMissing},
		{"NodePutGet", testPubsubNodePutGet},
		{"NodeLists", testPubsubNodeLists},
		{"NodeDelete", testPubsubNodeDelete},
		{"ItemsOrder", testPubsubItemsOrder},
		{"ItemsRepublish", testPubsubItemsRepublish},
		{"ItemsKeep", testPubsubItemsKeep},
		{"ItemsFilter", testPubsubItemsFilter},
		{"ItemDelete", testPubsubItemDelete},
		{"Purge", testPubsubPurge},
		{"NoAliasing", testPubsubNoAliasing},
		{"ConcurrentPublish", testPubsubConcurrentPublish},
	}
	for _, tc := range tests {
		t.Run("Pubsub/"+tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Faulty counts and fails these pubsub writes like its others.

// PutPubsubNode is a write.
func (f *Faulty) PutPubsubNode(ctx context.Context, n storage.PubsubNode) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.PutPubsubNode(ctx, n)
}

// DeletePubsubNode is a write.
func (f *Faulty) DeletePubsubNode(ctx context.Context, owner, node string) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.DeletePubsubNode(ctx, owner, node)
}

// PutPubsubItem is a write.
func (f *Faulty) PutPubsubItem(ctx context.Context, owner, node string, it storage.PubsubItem, keep int) ([]string, error) {
	if f.fail() {
		return nil, ErrInjected
	}
	return f.Store.PutPubsubItem(ctx, owner, node, it, keep)
}

// DeletePubsubItem is a write.
func (f *Faulty) DeletePubsubItem(ctx context.Context, owner, node, id string) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.DeletePubsubItem(ctx, owner, node, id)
}

// PurgePubsubNode is a write.
func (f *Faulty) PurgePubsubNode(ctx context.Context, owner, node string) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.PurgePubsubNode(ctx, owner, node)
}

var pubsubEpoch = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func sampleNode(owner, name string) storage.PubsubNode {
	return storage.PubsubNode{
		Owner: owner, Name: name,
		Config:        map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "max"},
		Affiliations:  map[string]string{bob: "member"},
		Subscriptions: map[string]string{carol + "/phone": "subscribed"},
	}
}

func mustPutNode(t *testing.T, s PubsubStore, n storage.PubsubNode) {
	t.Helper()
	if err := s.PutPubsubNode(ctx(), n); err != nil {
		t.Fatalf("PutPubsubNode(%s, %s): %v", n.Owner, n.Name, err)
	}
}

func mustPublish(t *testing.T, s PubsubStore, owner, node, id string, keep int) []string {
	t.Helper()
	dropped, err := s.PutPubsubItem(ctx(), owner, node, storage.PubsubItem{
		ID: id, Publisher: owner + "/desk", Stamp: pubsubEpoch, Payload: []byte("<p>" + id + "</p>"),
	}, keep)
	if err != nil {
		t.Fatalf("PutPubsubItem(%s): %v", id, err)
	}
	return dropped
}

func itemIDs(t *testing.T, s PubsubStore, owner, node string, ids []string, max int) []string {
	t.Helper()
	items, err := s.PubsubItems(ctx(), owner, node, ids, max)
	if err != nil {
		t.Fatalf("PubsubItems: %v", err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

func testPubsubNodeMissing(t *testing.T, s PubsubStore) {
	if _, err := s.PubsubNode(ctx(), alice, "n"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PubsubNode of nothing: %v, want ErrNotFound", err)
	}
	if _, err := s.PubsubItems(ctx(), alice, "n", nil, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PubsubItems of no node: %v, want ErrNotFound", err)
	}
	if _, err := s.PutPubsubItem(ctx(), alice, "n", storage.PubsubItem{ID: "1"}, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PutPubsubItem to no node: %v, want ErrNotFound", err)
	}
	if err := s.DeletePubsubNode(ctx(), alice, "n"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeletePubsubNode of nothing: %v, want ErrNotFound", err)
	}
	if err := s.PurgePubsubNode(ctx(), alice, "n"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("PurgePubsubNode of nothing: %v, want ErrNotFound", err)
	}
	if nodes, err := s.PubsubNodes(ctx(), alice); err != nil || len(nodes) != 0 {
		t.Errorf("PubsubNodes of nobody: %v, %v", nodes, err)
	}
	if owners, err := s.PubsubOwners(ctx(), "n"); err != nil || len(owners) != 0 {
		t.Errorf("PubsubOwners of nothing: %v, %v", owners, err)
	}
}

func sameNode(a, b storage.PubsubNode) bool {
	eq := func(x, y map[string]string) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return a.Owner == b.Owner && a.Name == b.Name && eq(a.Config, b.Config) &&
		eq(a.Affiliations, b.Affiliations) && eq(a.Subscriptions, b.Subscriptions)
}

func testPubsubNodePutGet(t *testing.T, s PubsubStore) {
	n := sampleNode(alice, "urn:xmpp:omemo:2:devices")
	mustPutNode(t, s, n)
	got, err := s.PubsubNode(ctx(), alice, n.Name)
	if err != nil || !sameNode(got, n) {
		t.Fatalf("PubsubNode = %+v, %v; want %+v", got, err, n)
	}
	// Replacing the record keeps the items.
	mustPublish(t, s, alice, n.Name, "current", 0)
	n.Config["pubsub#access_model"] = "presence"
	delete(n.Affiliations, bob)
	mustPutNode(t, s, n)
	got, _ = s.PubsubNode(ctx(), alice, n.Name)
	if !sameNode(got, n) {
		t.Errorf("after replace: %+v, want %+v", got, n)
	}
	if ids := itemIDs(t, s, alice, n.Name, nil, 0); !slices.Equal(ids, []string{"current"}) {
		t.Errorf("items after replacing the record: %v", ids)
	}
	if err := s.PutPubsubNode(ctx(), storage.PubsubNode{Owner: alice}); err == nil {
		t.Error("a node without a name was stored")
	}
}

func testPubsubNodeLists(t *testing.T, s PubsubStore) {
	for _, n := range []string{"urn:xmpp:avatar:metadata", "urn:xmpp:avatar:data", "urn:xmpp:bookmarks:1"} {
		mustPutNode(t, s, sampleNode(alice, n))
	}
	mustPutNode(t, s, sampleNode(carol, "urn:xmpp:avatar:metadata"))
	mustPutNode(t, s, sampleNode(bob, "urn:xmpp:avatar:metadata"))
	nodes, err := s.PubsubNodes(ctx(), alice)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
		if n.Owner != alice {
			t.Errorf("node %s of owner %q", n.Name, n.Owner)
		}
	}
	if want := []string{"urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata", "urn:xmpp:bookmarks:1"}; !slices.Equal(names, want) {
		t.Errorf("PubsubNodes = %v, want %v", names, want)
	}
	owners, err := s.PubsubOwners(ctx(), "urn:xmpp:avatar:metadata")
	if err != nil || !slices.Equal(owners, []string{alice, bob, carol}) {
		t.Errorf("PubsubOwners = %v, %v", owners, err)
	}
}

func testPubsubNodeDelete(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	mustPutNode(t, s, sampleNode(bob, "n"))
	mustPublish(t, s, alice, "n", "1", 0)
	if err := s.DeletePubsubNode(ctx(), alice, "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PubsubNode(ctx(), alice, "n"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted node still there: %v", err)
	}
	if owners, _ := s.PubsubOwners(ctx(), "n"); !slices.Equal(owners, []string{bob}) {
		t.Errorf("owners after delete: %v", owners)
	}
	// A node made again under that name starts empty.
	mustPutNode(t, s, sampleNode(alice, "n"))
	if ids := itemIDs(t, s, alice, "n", nil, 0); len(ids) != 0 {
		t.Errorf("recreated node has items %v", ids)
	}
}

func testPubsubItemsOrder(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	for _, id := range []string{"a", "b", "c"} {
		mustPublish(t, s, alice, "n", id, 0)
	}
	items, err := s.PubsubItems(ctx(), alice, "n", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].ID != "c" || items[2].ID != "a" {
		t.Fatalf("items %+v, want newest first c, b, a", items)
	}
	it := items[0]
	if it.Publisher != alice+"/desk" || !it.Stamp.Equal(pubsubEpoch) || string(it.Payload) != "<p>c</p>" {
		t.Errorf("item fields not kept: %+v", it)
	}
	if ids := itemIDs(t, s, alice, "n", nil, 2); !slices.Equal(ids, []string{"c", "b"}) {
		t.Errorf("max 2: %v", ids)
	}
}

func testPubsubItemsRepublish(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	for _, id := range []string{"a", "b", "c", "a"} {
		mustPublish(t, s, alice, "n", id, 0)
	}
	if ids := itemIDs(t, s, alice, "n", nil, 0); !slices.Equal(ids, []string{"a", "c", "b"}) {
		t.Errorf("republishing a moves it to the front: %v", ids)
	}
}

func testPubsubItemsKeep(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	var dropped []string
	for i := range 5 {
		dropped = append(dropped, mustPublish(t, s, alice, "n", fmt.Sprint(i), 3)...)
	}
	if !slices.Equal(dropped, []string{"0", "1"}) {
		t.Errorf("dropped %v, want [0 1]", dropped)
	}
	if ids := itemIDs(t, s, alice, "n", nil, 0); !slices.Equal(ids, []string{"4", "3", "2"}) {
		t.Errorf("kept %v", ids)
	}
	// keep 1: a singleton node.
	if d := mustPublish(t, s, alice, "n", "5", 1); !slices.Equal(d, []string{"2", "3", "4"}) {
		t.Errorf("keep 1 dropped %v", d)
	}
	if ids := itemIDs(t, s, alice, "n", nil, 0); !slices.Equal(ids, []string{"5"}) {
		t.Errorf("singleton holds %v", ids)
	}
}

func testPubsubItemsFilter(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	for _, id := range []string{"a", "b", "c"} {
		mustPublish(t, s, alice, "n", id, 0)
	}
	if ids := itemIDs(t, s, alice, "n", []string{"a", "zz", "c"}, 0); !slices.Equal(ids, []string{"c", "a"}) {
		t.Errorf("by id: %v", ids)
	}
}

func testPubsubItemDelete(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	mustPublish(t, s, alice, "n", "a", 0)
	mustPublish(t, s, alice, "n", "b", 0)
	if err := s.DeletePubsubItem(ctx(), alice, "n", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePubsubItem(ctx(), alice, "n", "a"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleting again: %v", err)
	}
	if err := s.DeletePubsubItem(ctx(), alice, "other", "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleting from no node: %v", err)
	}
	if ids := itemIDs(t, s, alice, "n", nil, 0); !slices.Equal(ids, []string{"b"}) {
		t.Errorf("left %v", ids)
	}
	// The deleted ID can be published again.
	mustPublish(t, s, alice, "n", "a", 0)
	if ids := itemIDs(t, s, alice, "n", nil, 0); !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("after republish %v", ids)
	}
}

func testPubsubPurge(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	mustPublish(t, s, alice, "n", "a", 0)
	if err := s.PurgePubsubNode(ctx(), alice, "n"); err != nil {
		t.Fatal(err)
	}
	if ids := itemIDs(t, s, alice, "n", nil, 0); len(ids) != 0 {
		t.Errorf("purged node holds %v", ids)
	}
	if _, err := s.PubsubNode(ctx(), alice, "n"); err != nil {
		t.Errorf("purge removed the node: %v", err)
	}
	mustPublish(t, s, alice, "n", "b", 0)
	if ids := itemIDs(t, s, alice, "n", nil, 0); !slices.Equal(ids, []string{"b"}) {
		t.Errorf("after purge and publish %v", ids)
	}
}

func testPubsubNoAliasing(t *testing.T, s PubsubStore) {
	n := sampleNode(alice, "n")
	mustPutNode(t, s, n)
	n.Config["pubsub#access_model"] = "changed"
	got, _ := s.PubsubNode(ctx(), alice, "n")
	if got.Config["pubsub#access_model"] != "open" {
		t.Error("the store kept the caller's map")
	}
	got.Config["pubsub#access_model"] = "changed again"
	again, _ := s.PubsubNode(ctx(), alice, "n")
	if again.Config["pubsub#access_model"] != "open" {
		t.Error("the store handed out its own map")
	}
	payload := []byte("<x/>")
	if _, err := s.PutPubsubItem(ctx(), alice, "n", storage.PubsubItem{ID: "1", Payload: payload}, 0); err != nil {
		t.Fatal(err)
	}
	payload[1] = 'y'
	items, _ := s.PubsubItems(ctx(), alice, "n", nil, 0)
	if string(items[0].Payload) != "<x/>" {
		t.Errorf("payload aliased: %q", items[0].Payload)
	}
}

func testPubsubConcurrentPublish(t *testing.T, s PubsubStore) {
	mustPutNode(t, s, sampleNode(alice, "n"))
	var wg sync.WaitGroup
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutPubsubItem(ctx(), alice, "n", storage.PubsubItem{ID: fmt.Sprint(i), Payload: []byte("<x/>")}, 10)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ids := itemIDs(t, s, alice, "n", nil, 0); len(ids) != 10 {
		t.Errorf("after %d concurrent publishes with keep 10: %d items", n, len(ids))
	}
}
