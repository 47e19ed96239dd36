package boltstore

import (
	"bytes"
	"context"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
)

// Persistent chat rooms live under one top-level bucket, created on the
// first write (files made before rooms existed read as having none):
//
//	muc/rooms/<room jid>   room record: a format byte and JSON, like
//	                       meetings, so fields can be added freely
//
// A room's messages are in the archive, owned by the room's JID.
var (
	bucketMUC = []byte("muc")
	mucRooms  = []byte("rooms")
)

var _ storage.Rooms = (*Store)(nil)

func mucBucket(tx *bolt.Tx) *bolt.Bucket {
	top := tx.Bucket(bucketMUC)
	if top == nil {
		return nil
	}
	return top.Bucket(mucRooms)
}

// PutRoom creates or replaces the room with r.JID.
func (s *Store) PutRoom(ctx context.Context, r storage.Room) error {
	if r.JID == "" {
		return errEmpty
	}
	v, err := encodeJSON(r)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketMUC)
		if err != nil {
			return err
		}
		rooms, err := top.CreateBucketIfNotExists(mucRooms)
		if err != nil {
			return err
		}
		return rooms.Put([]byte(r.JID), v)
	})
}

// Room returns the room with that JID, or storage.ErrNotFound.
func (s *Store) Room(ctx context.Context, jid string) (storage.Room, error) {
	var r storage.Room
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, ok := get(mucBucket(tx), []byte(jid))
		if !ok {
			return storage.ErrNotFound
		}
		if err := decodeJSON(v, &r); err != nil {
			return corrupt(err, "muc/rooms", nil, []byte(jid))
		}
		return nil
	})
	return r, err
}

// DeleteRoom removes the room, or returns storage.ErrNotFound.
func (s *Store) DeleteRoom(ctx context.Context, jid string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		rooms := mucBucket(tx)
		if _, ok := get(rooms, []byte(jid)); !ok {
			return storage.ErrNotFound
		}
		return rooms.Delete([]byte(jid))
	})
}

// ListRooms returns up to max rooms after afterJID, in JID order.
func (s *Store) ListRooms(ctx context.Context, afterJID string, max int) ([]storage.Room, error) {
	if max <= 0 {
		max = 100
	}
	var out []storage.Room
	err := s.view(ctx, func(tx *bolt.Tx) error {
		rooms := mucBucket(tx)
		if rooms == nil {
			return nil
		}
		c := rooms.Cursor()
		k, v := c.Seek([]byte(afterJID))
		if k != nil && bytes.Equal(k, []byte(afterJID)) {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < max; k, v = c.Next() {
			var r storage.Room
			if err := decodeJSON(v, &r); err != nil {
				return corrupt(err, "muc/rooms", nil, k)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
