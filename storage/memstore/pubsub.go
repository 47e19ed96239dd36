package memstore

import (
	"context"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	"github.com/parleyhq/parley/storage"
)

// pubsubData is what a Store keeps for storage.Pubsub, guarded by the
// Store's mu. Like meetingData it sits in a side table only because
// memstore.go's fields belong to another change.
type pubsubData struct {
	nodes map[pubsubKey]*pubsubNode
}

type pubsubKey struct{ owner, node string }

type pubsubNode struct {
	rec   storage.PubsubNode
	items []storage.PubsubItem // oldest first
}

var pubsubTables sync.Map // weak.Pointer[Store] -> *pubsubData

func (s *Store) pubsubData() *pubsubData {
	key := weak.Make(s)
	if d, ok := pubsubTables.Load(key); ok {
		return d.(*pubsubData)
	}
	d := &pubsubData{nodes: make(map[pubsubKey]*pubsubNode)}
	actual, loaded := pubsubTables.LoadOrStore(key, d)
	if !loaded {
		runtime.AddCleanup(s, func(k weak.Pointer[Store]) { pubsubTables.Delete(k) }, key)
	}
	return actual.(*pubsubData)
}

var _ storage.Pubsub = (*Store)(nil)

func clonePubsubNode(n storage.PubsubNode) storage.PubsubNode {
	n.Config = maps.Clone(n.Config)
	n.Affiliations = maps.Clone(n.Affiliations)
	n.Subscriptions = maps.Clone(n.Subscriptions)
	return n
}

func clonePubsubItem(it storage.PubsubItem) storage.PubsubItem {
	it.Payload = append([]byte{}, it.Payload...)
	return it
}

// PubsubNode returns one node, or storage.ErrNotFound.
func (s *Store) PubsubNode(ctx context.Context, owner, node string) (storage.PubsubNode, error) {
	var n storage.PubsubNode
	err := s.read(ctx, func() error {
		got, ok := s.pubsubData().nodes[pubsubKey{owner, node}]
		if !ok {
			return storage.ErrNotFound
		}
		n = clonePubsubNode(got.rec)
		return nil
	})
	return n, err
}

// PubsubNodes returns owner's nodes sorted by name.
func (s *Store) PubsubNodes(ctx context.Context, owner string) ([]storage.PubsubNode, error) {
	var out []storage.PubsubNode
	err := s.read(ctx, func() error {
		for k, n := range s.pubsubData().nodes {
			if k.owner == owner {
				out = append(out, clonePubsubNode(n.rec))
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b storage.PubsubNode) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// PubsubOwners returns the owners with a node of that name, sorted.
func (s *Store) PubsubOwners(ctx context.Context, node string) ([]string, error) {
	var out []string
	err := s.read(ctx, func() error {
		for k := range s.pubsubData().nodes {
			if k.node == node {
				out = append(out, k.owner)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// PutPubsubNode creates or replaces a node's record, keeping its items.
func (s *Store) PutPubsubNode(ctx context.Context, n storage.PubsubNode) error {
	if n.Owner == "" || n.Name == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		d := s.pubsubData()
		k := pubsubKey{n.Owner, n.Name}
		if cur, ok := d.nodes[k]; ok {
			cur.rec = clonePubsubNode(n)
			return nil
		}
		d.nodes[k] = &pubsubNode{rec: clonePubsubNode(n)}
		return nil
	})
}

// DeletePubsubNode removes a node and its items.
func (s *Store) DeletePubsubNode(ctx context.Context, owner, node string) error {
	return s.write(ctx, func() error {
		d := s.pubsubData()
		k := pubsubKey{owner, node}
		if _, ok := d.nodes[k]; !ok {
			return storage.ErrNotFound
		}
		delete(d.nodes, k)
		return nil
	})
}

// PubsubItems returns items newest first, filtered by ids and max.
func (s *Store) PubsubItems(ctx context.Context, owner, node string, ids []string, max int) ([]storage.PubsubItem, error) {
	var out []storage.PubsubItem
	err := s.read(ctx, func() error {
		n, ok := s.pubsubData().nodes[pubsubKey{owner, node}]
		if !ok {
			return storage.ErrNotFound
		}
		for i := len(n.items) - 1; i >= 0; i-- {
			if max > 0 && len(out) >= max {
				break
			}
			it := n.items[i]
			if len(ids) > 0 && !slices.Contains(ids, it.ID) {
				continue
			}
			out = append(out, clonePubsubItem(it))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutPubsubItem stores it as the newest item and trims to keep.
func (s *Store) PutPubsubItem(ctx context.Context, owner, node string, it storage.PubsubItem, keep int) ([]string, error) {
	if it.ID == "" {
		return nil, errEmpty
	}
	var dropped []string
	err := s.write(ctx, func() error {
		n, ok := s.pubsubData().nodes[pubsubKey{owner, node}]
		if !ok {
			return storage.ErrNotFound
		}
		n.items = slices.DeleteFunc(n.items, func(o storage.PubsubItem) bool { return o.ID == it.ID })
		n.items = append(n.items, clonePubsubItem(it))
		if keep > 0 && len(n.items) > keep {
			for _, o := range n.items[:len(n.items)-keep] {
				dropped = append(dropped, o.ID)
			}
			n.items = slices.Clone(n.items[len(n.items)-keep:])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dropped, nil
}

// DeletePubsubItem removes one item.
func (s *Store) DeletePubsubItem(ctx context.Context, owner, node, id string) error {
	return s.write(ctx, func() error {
		n, ok := s.pubsubData().nodes[pubsubKey{owner, node}]
		if !ok {
			return storage.ErrNotFound
		}
		i := slices.IndexFunc(n.items, func(o storage.PubsubItem) bool { return o.ID == id })
		if i < 0 {
			return storage.ErrNotFound
		}
		n.items = slices.Delete(n.items, i, i+1)
		return nil
	})
}

// PurgePubsubNode removes every item of a node.
func (s *Store) PurgePubsubNode(ctx context.Context, owner, node string) error {
	return s.write(ctx, func() error {
		n, ok := s.pubsubData().nodes[pubsubKey{owner, node}]
		if !ok {
			return storage.ErrNotFound
		}
		n.items = nil
		return nil
	})
}
