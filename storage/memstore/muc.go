package memstore

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"weak"

	"github.com/parleyhq/parley/storage"
)

// mucData is what a Store keeps for storage.Rooms, guarded by the Store's
// mu. Like meetingData it sits in a side table only because memstore.go's
// fields belong to another change.
type mucData struct {
	rooms map[string]storage.Room
}

var mucTables sync.Map // weak.Pointer[Store] -> *mucData

func (s *Store) mucData() *mucData {
	key := weak.Make(s)
	if d, ok := mucTables.Load(key); ok {
		return d.(*mucData)
	}
	d := &mucData{rooms: make(map[string]storage.Room)}
	actual, loaded := mucTables.LoadOrStore(key, d)
	if !loaded {
		runtime.AddCleanup(s, func(k weak.Pointer[Store]) { mucTables.Delete(k) }, key)
	}
	return actual.(*mucData)
}

var _ storage.Rooms = (*Store)(nil)

func cloneRoom(r storage.Room) storage.Room {
	r.Affiliations = slices.Clone(r.Affiliations)
	return r
}

// PutRoom creates or replaces the room with r.JID.
func (s *Store) PutRoom(ctx context.Context, r storage.Room) error {
	if r.JID == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		s.mucData().rooms[r.JID] = cloneRoom(r)
		return nil
	})
}

// Room returns the room with that JID, or storage.ErrNotFound.
func (s *Store) Room(ctx context.Context, jid string) (storage.Room, error) {
	var r storage.Room
	err := s.read(ctx, func() error {
		got, ok := s.mucData().rooms[jid]
		if !ok {
			return storage.ErrNotFound
		}
		r = cloneRoom(got)
		return nil
	})
	return r, err
}

// DeleteRoom removes the room, or returns storage.ErrNotFound.
func (s *Store) DeleteRoom(ctx context.Context, jid string) error {
	return s.write(ctx, func() error {
		d := s.mucData()
		if _, ok := d.rooms[jid]; !ok {
			return storage.ErrNotFound
		}
		delete(d.rooms, jid)
		return nil
	})
}

// ListRooms returns up to max rooms after afterJID, in JID order.
func (s *Store) ListRooms(ctx context.Context, afterJID string, max int) ([]storage.Room, error) {
	if max <= 0 {
		max = 100
	}
	var out []storage.Room
	err := s.read(ctx, func() error {
		for j, r := range s.mucData().rooms {
			if j > afterJID {
				out = append(out, r)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b storage.Room) int { return strings.Compare(a.JID, b.JID) })
	if len(out) > max {
		out = out[:max]
	}
	for i := range out {
		out[i] = cloneRoom(out[i])
	}
	return out, err
}
