package storagetest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/parleyhq/parley/storage"
)

// ErrInjected is the error a Faulty store returns for a write it was told
// to fail. Check for it with errors.Is.
var ErrInjected = errors.New("storagetest: injected write failure")

// Faulty wraps a Store and fails its writes on demand, to test that a
// caller acknowledges nothing the store did not keep and loses nothing it
// already had.
//
// The first FailAfter writes go through; every later one returns
// ErrInjected without reaching the wrapped store, so the store still holds
// exactly what it held before. FailAfter 0 fails every write; a negative
// FailAfter fails none (a pass-through that counts writes). Reads and
// Close always go through.
//
// Writes are PutRosterItem, DeleteRosterItem, PushOffline, DeleteOffline,
// PutUserData, DeleteUserData, AppendMessages, SetMessageState and
// DeleteConversation.
//
//	f := &storagetest.Faulty{Store: memstore.New(), FailAfter: 2}
//	// third and later writes fail with storagetest.ErrInjected
//
// Use a Faulty by pointer; its methods are safe for concurrent use, and
// concurrent writes are counted in the order they reach it.
type Faulty struct {
	storage.Store
	// FailAfter is how many writes succeed before failures begin. Set it
	// before first use; change it later with SetFailAfter.
	FailAfter int

	mu     sync.Mutex
	writes int // attempted writes, failed ones included
}

var _ storage.Store = (*Faulty)(nil)

// SetFailAfter starts over: the next n writes succeed and the ones after
// fail (n < 0: none fail). Use it to heal a store in the middle of a test,
// for example to check that a retried write now lands.
func (f *Faulty) SetFailAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.FailAfter = n
	f.writes = 0
}

// Writes reports how many writes were attempted since the Faulty was made
// or last reset with SetFailAfter, failed ones included.
func (f *Faulty) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// fail counts a write and reports whether to refuse it.
func (f *Faulty) fail() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	return f.FailAfter >= 0 && f.writes > f.FailAfter
}

// PutRosterItem is a write.
func (f *Faulty) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (uint64, error) {
	if f.fail() {
		return 0, ErrInjected
	}
	return f.Store.PutRosterItem(ctx, owner, item)
}

// DeleteRosterItem is a write.
func (f *Faulty) DeleteRosterItem(ctx context.Context, owner, contact string) (uint64, error) {
	if f.fail() {
		return 0, ErrInjected
	}
	return f.Store.DeleteRosterItem(ctx, owner, contact)
}

// PushOffline is a write.
func (f *Faulty) PushOffline(ctx context.Context, owner string, stamp time.Time, data []byte, limit int) (uint64, error) {
	if f.fail() {
		return 0, ErrInjected
	}
	return f.Store.PushOffline(ctx, owner, stamp, data, limit)
}

// DeleteOffline is a write.
func (f *Faulty) DeleteOffline(ctx context.Context, owner string, upTo uint64) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.DeleteOffline(ctx, owner, upTo)
}

// PutUserData is a write.
func (f *Faulty) PutUserData(ctx context.Context, owner, key string, value []byte) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.PutUserData(ctx, owner, key, value)
}

// DeleteUserData is a write.
func (f *Faulty) DeleteUserData(ctx context.Context, owner, key string) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.DeleteUserData(ctx, owner, key)
}

// AppendMessages is a write: one call is one write, however many
// messages it carries, as it is one transaction.
func (f *Faulty) AppendMessages(ctx context.Context, msgs []storage.ArchivedMessage) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.AppendMessages(ctx, msgs)
}

// SetMessageState is a write.
func (f *Faulty) SetMessageState(ctx context.Context, owner, with, clientID string, state uint8) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.SetMessageState(ctx, owner, with, clientID, state)
}

// DeleteConversation is a write.
func (f *Faulty) DeleteConversation(ctx context.Context, owner, with string) error {
	if f.fail() {
		return ErrInjected
	}
	return f.Store.DeleteConversation(ctx, owner, with)
}
