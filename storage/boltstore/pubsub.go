package boltstore

import (
	"context"
	"slices"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
)

// Personal pubsub (PEP) lives under one top-level bucket, created on the
// first write (files made before it existed read as having no nodes):
//
//	pubsub/nodes/<owner>/<node>             node record
//	pubsub/owners/<node>/<owner>            empty (index for PubsubOwners)
//	pubsub/items/<owner>/<node>/seq/<seq>   item; seq 8 bytes big endian,
//	                                        so keys sort in publish order
//	pubsub/items/<owner>/<node>/ids/<id>    seq of the item with that ID
//
// Records are a format byte followed by JSON, like meetings: a few are
// read at a time and fields can be added without a new format.
var (
	bucketPubsub = []byte("pubsub")
)

var _ storage.Pubsub = (*Store)(nil)

// pb returns a bucket under pubsub by path, or nil when any part is
// missing.
func pb(tx *bolt.Tx, path ...string) *bolt.Bucket {
	b := tx.Bucket(bucketPubsub)
	for _, p := range path {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(p))
	}
	return b
}

// pbw is pb for writers: it creates what is missing.
func pbw(tx *bolt.Tx, path ...string) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists(bucketPubsub)
	if err != nil {
		return nil, err
	}
	for _, p := range path {
		if b, err = b.CreateBucketIfNotExists([]byte(p)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func getPubsubNode(tx *bolt.Tx, owner, node string) (storage.PubsubNode, error) {
	var n storage.PubsubNode
	v, ok := get(pb(tx, "nodes", owner), []byte(node))
	if !ok {
		return n, storage.ErrNotFound
	}
	if err := decodeJSON(v, &n); err != nil {
		return n, corrupt(err, "pubsub/nodes", []byte(owner), []byte(node))
	}
	return n, nil
}

// PubsubNode returns one node, or storage.ErrNotFound.
func (s *Store) PubsubNode(ctx context.Context, owner, node string) (storage.PubsubNode, error) {
	var n storage.PubsubNode
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = getPubsubNode(tx, owner, node)
		return err
	})
	return n, err
}

// PubsubNodes returns owner's nodes sorted by name.
func (s *Store) PubsubNodes(ctx context.Context, owner string) ([]storage.PubsubNode, error) {
	var out []storage.PubsubNode
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		b := pb(tx, "nodes", owner)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var n storage.PubsubNode
			if err := decodeJSON(v, &n); err != nil {
				return corrupt(err, "pubsub/nodes", []byte(owner), k)
			}
			out = append(out, n)
			return nil
		})
	})
	return out, err
}

// PubsubOwners returns the owners with a node of that name, sorted.
func (s *Store) PubsubOwners(ctx context.Context, node string) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		b := pb(tx, "owners", node)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// PutPubsubNode creates or replaces a node's record, keeping its items.
func (s *Store) PutPubsubNode(ctx context.Context, n storage.PubsubNode) error {
	if n.Owner == "" || n.Name == "" {
		return errEmpty
	}
	v, err := encodeJSON(n)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		nodes, err := pbw(tx, "nodes", n.Owner)
		if err != nil {
			return err
		}
		if err := nodes.Put([]byte(n.Name), v); err != nil {
			return err
		}
		owners, err := pbw(tx, "owners", n.Name)
		if err != nil {
			return err
		}
		return owners.Put([]byte(n.Owner), nil)
	})
}

// DeletePubsubNode removes a node and its items.
func (s *Store) DeletePubsubNode(ctx context.Context, owner, node string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		nodes := pb(tx, "nodes", owner)
		if _, ok := get(nodes, []byte(node)); !ok {
			return storage.ErrNotFound
		}
		if err := nodes.Delete([]byte(node)); err != nil {
			return err
		}
		if o := pb(tx, "owners", node); o != nil {
			if err := o.Delete([]byte(owner)); err != nil {
				return err
			}
		}
		if items := pb(tx, "items", owner); items != nil && items.Bucket([]byte(node)) != nil {
			return items.DeleteBucket([]byte(node))
		}
		return nil
	})
}

// PubsubItems returns items newest first, filtered by ids and max.
func (s *Store) PubsubItems(ctx context.Context, owner, node string, ids []string, max int) ([]storage.PubsubItem, error) {
	var out []storage.PubsubItem
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		if _, ok := get(pb(tx, "nodes", owner), []byte(node)); !ok {
			return storage.ErrNotFound
		}
		seq := pb(tx, "items", owner, node, "seq")
		if seq == nil {
			return nil
		}
		c := seq.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if max > 0 && len(out) >= max {
				break
			}
			var it storage.PubsubItem
			if err := decodeJSON(v, &it); err != nil {
				return corrupt(err, "pubsub/items", []byte(owner), k)
			}
			if len(ids) > 0 && !slices.Contains(ids, it.ID) {
				continue
			}
			out = append(out, it)
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
	v, err := encodeJSON(it)
	if err != nil {
		return nil, err
	}
	var dropped []string
	err = s.update(ctx, func(tx *bolt.Tx) error {
		dropped = nil
		if _, ok := get(pb(tx, "nodes", owner), []byte(node)); !ok {
			return storage.ErrNotFound
		}
		seq, err := pbw(tx, "items", owner, node, "seq")
		if err != nil {
			return err
		}
		ids, err := pbw(tx, "items", owner, node, "ids")
		if err != nil {
			return err
		}
		if old, ok := get(ids, []byte(it.ID)); ok {
			if err := seq.Delete(old); err != nil {
				return err
			}
		}
		n, err := seq.NextSequence()
		if err != nil {
			return err
		}
		k := seqKey(n)
		if err := seq.Put(k, v); err != nil {
			return err
		}
		if err := ids.Put([]byte(it.ID), k); err != nil {
			return err
		}
		if keep <= 0 {
			return nil
		}
		count := 0
		c := seq.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			count++
		}
		if count <= keep {
			return nil
		}
		// Collect first: deleting while iterating a bbolt cursor skips keys.
		var oldest [][]byte
		for k, v := c.First(); k != nil && len(oldest) < count-keep; k, v = c.Next() {
			var o storage.PubsubItem
			if err := decodeJSON(v, &o); err != nil {
				return corrupt(err, "pubsub/items", []byte(owner), k)
			}
			oldest = append(oldest, append([]byte(nil), k...))
			dropped = append(dropped, o.ID)
		}
		for i, k := range oldest {
			if err := seq.Delete(k); err != nil {
				return err
			}
			if err := ids.Delete([]byte(dropped[i])); err != nil {
				return err
			}
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
	return s.update(ctx, func(tx *bolt.Tx) error {
		if _, ok := get(pb(tx, "nodes", owner), []byte(node)); !ok {
			return storage.ErrNotFound
		}
		ids := pb(tx, "items", owner, node, "ids")
		k, ok := get(ids, []byte(id))
		if !ok {
			return storage.ErrNotFound
		}
		k = append([]byte(nil), k...)
		if err := pb(tx, "items", owner, node, "seq").Delete(k); err != nil {
			return err
		}
		return ids.Delete([]byte(id))
	})
}

// PurgePubsubNode removes every item of a node.
func (s *Store) PurgePubsubNode(ctx context.Context, owner, node string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if _, ok := get(pb(tx, "nodes", owner), []byte(node)); !ok {
			return storage.ErrNotFound
		}
		if items := pb(tx, "items", owner); items != nil && items.Bucket([]byte(node)) != nil {
			return items.DeleteBucket([]byte(node))
		}
		return nil
	})
}
