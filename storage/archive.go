package storage

import (
	"context"
	"time"
)

// ArchivedMessage is one message in a user's archive (XEP-0313). Each
// message of a conversation is kept twice, once in each participant's
// archive, so each user's history can be paged, searched and deleted
// alone.
type ArchivedMessage struct {
	// Owner is whose archive holds the message (bare JID).
	Owner string
	// ID is the archive id (XEP-0359 stanza-id) Parley assigns. IDs of one
	// owner sort in the order the messages were archived (byte-wise
	// comparison), so paging by ID is paging by time.
	ID string
	// With is the other party (bare JID): the contact, or the alias.
	With string
	// Stamp is when the server archived the message.
	Stamp time.Time
	// Outgoing: Owner sent it; otherwise Owner received it.
	Outgoing bool
	// ClientID is the sender's id for the message (origin-id, or the
	// stanza's id attribute), by which receipts and markers refer to it.
	ClientID string
	// Body is the plain text, indexed for full-text search.
	Body string
	// Data is the message stanza as it will be replayed; opaque to stores.
	Data []byte
	// State is the highest delivery state receipts and markers reported
	// (0 none; Parley defines the values); see SetMessageState.
	State uint8
}

// ArchiveQuery selects messages of one owner's archive. Zero fields do not
// filter. Results are in archive order (oldest first).
type ArchiveQuery struct {
	// With keeps only messages exchanged with this bare JID.
	With string
	// Start and End bound Stamp, inclusive.
	Start, End time.Time
	// AfterID and BeforeID bound the ID, exclusive: RSM paging (XEP-0059).
	// An AfterID or BeforeID that is not in the archive is an error
	// wrapping ErrNotFound.
	AfterID, BeforeID string
	// Last asks for the last Max matches (the page before BeforeID, or the
	// newest page) instead of the first.
	Last bool
	// Max is the most messages returned; 0 means 100.
	Max int
	// Text keeps only messages whose Body contains every word of Text
	// (case-insensitive, whole words: "lunch" finds "Lunch?" but not
	// "lunchtime").
	Text string
}

// Archive keeps message history. Stores should make AppendMessages cheap
// under concurrency: many sessions append at once, and an append must be
// durable before it returns (group several appends into one fsync). A
// store may index appends after they are durable (boltstore does, from a
// write-ahead log), but every read must see every append that returned
// before the read was called.
type Archive interface {
	// AppendMessages stores messages (of any owners) atomically: all or
	// none. An ID that already exists for its owner is an error.
	AppendMessages(ctx context.Context, msgs []ArchivedMessage) error
	// QueryMessages returns the messages q selects and whether the result
	// reaches the end of the selection in the direction of paging
	// (XEP-0313 complete: no more after the page, or before it with Last).
	QueryMessages(ctx context.Context, owner string, q ArchiveQuery) (msgs []ArchivedMessage, complete bool, err error)
	// SetMessageState raises the State of owner's message with clientID
	// exchanged with with (it never lowers it); ErrNotFound if none.
	SetMessageState(ctx context.Context, owner, with, clientID string, state uint8) error
	// DeleteConversation removes every message between owner and with
	// from owner's archive (the other party's copy stays).
	DeleteConversation(ctx context.Context, owner, with string) error
}
