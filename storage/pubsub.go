package storage

import (
	"context"
	"time"
)

// PubsubNode is one node of a user's personal publish-subscribe service
// (PEP, XEP-0163): avatars, bookmarks, OMEMO device lists. Package pubsub
// gives the fields their meaning; stores keep them as given.
type PubsubNode struct {
	// Owner is the bare JID of the account; Name the NodeID. Both
	// required.
	Owner, Name string
	// Config holds the node configuration by field name
	// ("pubsub#access_model": "open"), in package pubsub's encoding.
	Config map[string]string
	// Affiliations maps bare JIDs to an affiliation other than the
	// owner's ("member", "publisher", "outcast"); the whitelist access
	// model admits members.
	Affiliations map[string]string
	// Subscriptions maps subscribed JIDs (bare or full) to their state
	// ("subscribed").
	Subscriptions map[string]string
}

// PubsubItem is one published item. Payload is the item's XML as
// package xmppsrv serialises it; stores treat it as opaque bytes.
type PubsubItem struct {
	ID        string
	Publisher string
	Stamp     time.Time
	Payload   []byte
}

// Pubsub keeps the nodes and items of users' personal pubsub services.
// Items of a node are ordered by publication: publishing an ID again
// replaces the old item and makes it the newest.
type Pubsub interface {
	// PubsubNode returns one node, or ErrNotFound.
	PubsubNode(ctx context.Context, owner, node string) (PubsubNode, error)
	// PubsubNodes returns owner's nodes, sorted by name.
	PubsubNodes(ctx context.Context, owner string) ([]PubsubNode, error)
	// PubsubOwners returns the owners that have a node of that name,
	// sorted (to send a contact's last items at login without reading
	// every account of a domain).
	PubsubOwners(ctx context.Context, node string) ([]string, error)
	// PutPubsubNode creates or replaces a node's record; its items are
	// kept.
	PutPubsubNode(ctx context.Context, n PubsubNode) error
	// DeletePubsubNode removes a node and its items, or returns
	// ErrNotFound.
	DeletePubsubNode(ctx context.Context, owner, node string) error
	// PubsubItems returns a node's items, newest first: those with the
	// given IDs when ids is not empty (missing ones are left out), and
	// at most max of them when max > 0. A node that does not exist gives
	// ErrNotFound.
	PubsubItems(ctx context.Context, owner, node string, ids []string, max int) ([]PubsubItem, error)
	// PutPubsubItem stores it as the node's newest item, replacing one
	// with the same ID, then drops the oldest items beyond keep (when
	// keep > 0) and returns their IDs. A node that does not exist gives
	// ErrNotFound and nothing is stored.
	PutPubsubItem(ctx context.Context, owner, node string, it PubsubItem, keep int) (dropped []string, err error)
	// DeletePubsubItem removes one item, or returns ErrNotFound.
	DeletePubsubItem(ctx context.Context, owner, node, id string) error
	// PurgePubsubNode removes every item of a node, or returns
	// ErrNotFound when there is no such node.
	PurgePubsubNode(ctx context.Context, owner, node string) error
}
