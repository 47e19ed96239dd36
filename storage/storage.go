// Package storage defines what Parley keeps on disk: rosters, offline
// messages and per-user data such as vCards. Parley ships two
// implementations, boltstore (the default, one bbolt file) and memstore
// (in memory, for tests); an integrator can write another (PostgreSQL, say)
// and prove it with storagetest.RunConformanceTests.
//
// Addresses passed to a store are normalised bare JIDs (user@domain, lower
// case); a store compares them byte for byte. Every method is safe for
// concurrent use and must not return before the write is durable: Parley
// acknowledges a change to the user only after the store returned nil.
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound: the item, value or owner does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrLimit: the write would pass a limit the caller gave (for example
	// the offline queue of a user is full). Nothing was written.
	ErrLimit = errors.New("storage: limit reached")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("storage: closed")
)

// Subscription is the presence subscription state of a roster item
// (RFC 6121 section 2.1.2.5).
type Subscription uint8

const (
	SubNone Subscription = iota
	SubTo                // the owner receives the contact's presence
	SubFrom              // the contact receives the owner's presence
	SubBoth
)

func (s Subscription) String() string {
	switch s {
	case SubTo:
		return "to"
	case SubFrom:
		return "from"
	case SubBoth:
		return "both"
	}
	return "none"
}

// RosterItem is everything the owner's server knows about one contact:
// the roster item the client sees and the subscription bookkeeping behind
// it.
type RosterItem struct {
	// Contact is the contact's bare JID.
	Contact string
	Name    string
	Groups  []string
	// Subscription is the state both sides agreed on.
	Subscription Subscription
	// AskOut: the owner asked to see the contact's presence and no answer
	// came yet (ask='subscribe' in the roster).
	AskOut bool
	// PendingIn: the contact asked to see the owner's presence and the
	// owner has not answered; the request is delivered again at each login.
	PendingIn bool
	// PendingInStatus is the status text that came with that request.
	PendingInStatus string
	// Approved: the owner pre-approved a subscription request from the
	// contact (RFC 6121 section 3.4).
	Approved bool
	// Hidden: the item carries subscription state only and is not part of
	// the roster shown to the owner (a request from someone not in the
	// roster, RFC 6121 section 3.1.3; or a domain contact the owner removed).
	Hidden bool
}

// Rosters keeps each user's roster. Every change bumps the owner's roster
// version (XEP-0237), a number that only grows.
type Rosters interface {
	// Roster returns all items of owner (Hidden ones too) and the current
	// version; an owner with no roster has no items and version 0.
	Roster(ctx context.Context, owner string) ([]RosterItem, uint64, error)
	// RosterItem returns one item, or ErrNotFound.
	RosterItem(ctx context.Context, owner, contact string) (RosterItem, error)
	// PutRosterItem creates or replaces the item for item.Contact and
	// returns the new version.
	PutRosterItem(ctx context.Context, owner string, item RosterItem) (uint64, error)
	// DeleteRosterItem removes the item and returns the new version; it
	// returns ErrNotFound (and changes nothing) when there is no such item.
	DeleteRosterItem(ctx context.Context, owner, contact string) (uint64, error)
}

// OfflineMessage is a stanza kept for a user who was offline. Data is the
// stanza as Parley will send it; stores treat it as opaque bytes.
type OfflineMessage struct {
	// Seq orders a user's offline messages; it grows with every push.
	Seq   uint64
	Stamp time.Time
	Data  []byte
}

// Offline is the store-and-forward queue of XEP-0160.
type Offline interface {
	// PushOffline appends a message to owner's queue and returns its Seq.
	// When the queue already holds limit messages (limit > 0) it returns
	// ErrLimit and stores nothing.
	PushOffline(ctx context.Context, owner string, stamp time.Time, data []byte, limit int) (uint64, error)
	// OfflineMessages returns owner's queue in push order.
	OfflineMessages(ctx context.Context, owner string) ([]OfflineMessage, error)
	// DeleteOffline removes owner's messages with Seq <= upTo, once they
	// have been handed to a session.
	DeleteOffline(ctx context.Context, owner string, upTo uint64) error
}

// UserData keeps small per-user values by key (the vCard, private XML,
// preferences). Keys are short ASCII strings chosen by Parley.
type UserData interface {
	// UserData returns the value, or ErrNotFound.
	UserData(ctx context.Context, owner, key string) ([]byte, error)
	// PutUserData stores value under key, replacing what was there.
	PutUserData(ctx context.Context, owner, key string, value []byte) error
	// DeleteUserData removes the value; a missing one is not an error.
	DeleteUserData(ctx context.Context, owner, key string) error
}

// Store is a whole storage backend.
type Store interface {
	Rosters
	Offline
	UserData
	Meetings
	Archive
	Pubsub
	Rooms
	// Close releases the store; calls after Close return ErrClosed.
	Close() error
}
