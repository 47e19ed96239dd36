// Package memstore is an in-memory storage.Store, for tests, quick
// evaluation and as the reference the other stores are compared with.
// Nothing survives the process.
//
// A Store copies every value in and out, so callers may reuse or mutate
// the slices they pass or receive. It passes
// storagetest.RunConformanceTests; other packages use it as their test
// store, and wrap it in storagetest.Faulty to inject write failures.
//
//	st := memstore.New()
//	defer st.Close()
//	ver, err := st.PutRosterItem(ctx, "alice@example.com", storage.RosterItem{Contact: "bob@example.com"})
package memstore

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/storage"
)

// errEmpty rejects empty owners, contacts and keys, as boltstore must (bbolt
// has no empty keys); accepting them here would let a test pass on
// memstore that fails in production.
var errEmpty = errors.New("memstore: empty owner, contact or key")

// Store is an in-memory storage.Store. Its zero value is not usable; call
// New. All methods are safe for concurrent use.
type Store struct {
	// One lock for everything: a test store needs to be obviously
	// correct more than it needs to scale.
	mu     sync.RWMutex
	users  map[string]*user
	closed bool
}

// user is everything kept for one owner.
type user struct {
	roster   map[string]storage.RosterItem
	version  uint64
	offline  []storage.OfflineMessage // in Seq order
	lastSeq  uint64                   // survives DeleteOffline, so Seq never repeats
	userdata map[string][]byte
	archive  archive // message history; see archive.go
}

var _ storage.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{users: make(map[string]*user)}
}

// read runs fn under the read lock, or fails when the store is closed or
// ctx is done.
func (s *Store) read(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return storage.ErrClosed
	}
	return fn()
}

// write is read with the write lock.
func (s *Store) write(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return storage.ErrClosed
	}
	return fn()
}

// owner returns owner's record, creating it when create is set; it
// returns nil for an unknown owner otherwise. Callers hold s.mu.
func (s *Store) owner(owner string, create bool) *user {
	u := s.users[owner]
	if u == nil && create {
		u = &user{
			roster:   make(map[string]storage.RosterItem),
			userdata: make(map[string][]byte),
		}
		s.users[owner] = u
	}
	return u
}

// Roster returns all of owner's items, sorted by contact, and the roster
// version. The order matches boltstore's so tests behave alike on both.
func (s *Store) Roster(ctx context.Context, owner string) ([]storage.RosterItem, uint64, error) {
	var (
		items []storage.RosterItem
		ver   uint64
	)
	err := s.read(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil {
			return nil
		}
		ver = u.version
		if len(u.roster) == 0 {
			return nil
		}
		items = make([]storage.RosterItem, 0, len(u.roster))
		for _, it := range u.roster {
			items = append(items, cloneItem(it))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(items, func(a, b storage.RosterItem) int { return strings.Compare(a.Contact, b.Contact) })
	return items, ver, nil
}

// RosterItem returns one item, or storage.ErrNotFound.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	var item storage.RosterItem
	err := s.read(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil {
			return storage.ErrNotFound
		}
		it, ok := u.roster[contact]
		if !ok {
			return storage.ErrNotFound
		}
		item = cloneItem(it)
		return nil
	})
	return item, err
}

// PutRosterItem creates or replaces item and returns the new version.
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (uint64, error) {
	if owner == "" || item.Contact == "" {
		return 0, errEmpty
	}
	var ver uint64
	err := s.write(ctx, func() error {
		u := s.owner(owner, true)
		u.roster[item.Contact] = cloneItem(item)
		u.version++
		ver = u.version
		return nil
	})
	return ver, err
}

// DeleteRosterItem removes the item and returns the new version, or
// storage.ErrNotFound without changing the version.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (uint64, error) {
	var ver uint64
	err := s.write(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil {
			return storage.ErrNotFound
		}
		if _, ok := u.roster[contact]; !ok {
			return storage.ErrNotFound
		}
		delete(u.roster, contact)
		u.version++
		ver = u.version
		return nil
	})
	return ver, err
}

// PushOffline appends a message to owner's queue, or returns
// storage.ErrLimit when limit > 0 and the queue already holds limit
// messages. Seqs start at 1.
func (s *Store) PushOffline(ctx context.Context, owner string, stamp time.Time, data []byte, limit int) (uint64, error) {
	if owner == "" {
		return 0, errEmpty
	}
	var seq uint64
	err := s.write(ctx, func() error {
		u := s.owner(owner, true)
		if limit > 0 && len(u.offline) >= limit {
			return storage.ErrLimit
		}
		u.lastSeq++
		seq = u.lastSeq
		u.offline = append(u.offline, storage.OfflineMessage{
			Seq: seq,
			// UTC without the monotonic reading: what a store on disk
			// gives back, so code tested here sees the same times.
			Stamp: stamp.Round(0).UTC(),
			Data:  slices.Clone(data),
		})
		return nil
	})
	return seq, err
}

// OfflineMessages returns owner's queue in push order.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	var msgs []storage.OfflineMessage
	err := s.read(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil || len(u.offline) == 0 {
			return nil
		}
		msgs = make([]storage.OfflineMessage, len(u.offline))
		for i, m := range u.offline {
			m.Data = slices.Clone(m.Data)
			msgs[i] = m
		}
		return nil
	})
	return msgs, err
}

// DeleteOffline removes owner's messages with Seq <= upTo.
func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo uint64) error {
	return s.write(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil {
			return nil
		}
		i := sort.Search(len(u.offline), func(i int) bool { return u.offline[i].Seq > upTo })
		// Shift in place and clear the tail so delivered data is freed
		// instead of pinned by the backing array.
		n := copy(u.offline, u.offline[i:])
		clear(u.offline[n:])
		u.offline = u.offline[:n]
		return nil
	})
}

// UserData returns the value under key, or storage.ErrNotFound.
func (s *Store) UserData(ctx context.Context, owner, key string) ([]byte, error) {
	var val []byte
	err := s.read(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil {
			return storage.ErrNotFound
		}
		v, ok := u.userdata[key]
		if !ok {
			return storage.ErrNotFound
		}
		// Non-nil even when empty, so a caller can tell a stored empty
		// value from a missing one without looking at err.
		val = append([]byte{}, v...)
		return nil
	})
	return val, err
}

// PutUserData stores value under key, replacing what was there.
func (s *Store) PutUserData(ctx context.Context, owner, key string, value []byte) error {
	if owner == "" || key == "" {
		return errEmpty
	}
	return s.write(ctx, func() error {
		s.owner(owner, true).userdata[key] = slices.Clone(value)
		return nil
	})
}

// DeleteUserData removes the value under key; a missing one is not an
// error.
func (s *Store) DeleteUserData(ctx context.Context, owner, key string) error {
	return s.write(ctx, func() error {
		if u := s.owner(owner, false); u != nil {
			delete(u.userdata, key)
		}
		return nil
	})
}

// Close drops all data; later calls, Close included, return
// storage.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return storage.ErrClosed
	}
	s.closed = true
	s.users = nil
	return nil
}

// cloneItem copies the one part of a RosterItem that can alias: Groups.
// An empty Groups comes back nil, as it does from boltstore.
func cloneItem(it storage.RosterItem) storage.RosterItem {
	if len(it.Groups) == 0 {
		it.Groups = nil
	} else {
		it.Groups = slices.Clone(it.Groups)
	}
	return it
}
