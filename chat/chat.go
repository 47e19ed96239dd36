// Package chat holds the rules of one-to-one and alias messaging that do
// not depend on the wire: who an address reaches (a chat-enabled user, the
// online members of an alias, nobody), and the offline queue a message
// waits in while its recipient has no session (XEP-0160). The XMPP edge
// asks Resolve where a message goes and stores what it cannot deliver with
// StoreOffline.
package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Errors Resolve and StoreOffline return, checked with errors.Is. The XMPP
// edge maps them to stanza errors.
var (
	// ErrNoSuchUser: no user or alias has the address (service-unavailable).
	ErrNoSuchUser = errors.New("chat: no such user")
	// ErrNotChatEnabled: the user exists but has not turned chat on.
	ErrNotChatEnabled = errors.New("chat: user has not enabled chat")
	// ErrOfflineFull: the recipient's offline queue is full.
	ErrOfflineFull = errors.New("chat: offline message queue is full")
	// ErrRemote: the address is on a domain this server does not serve.
	ErrRemote = errors.New("chat: domain is not served here")
)

// Kind says what an address is.
type Kind int

const (
	// ToUser: a chat-enabled local user.
	ToUser Kind = iota
	// ToAlias: a local alias; Members lists who it reaches.
	ToAlias
)

// Target is what a message address resolves to.
type Target struct {
	Kind  Kind
	Entry account.Entry
	// Members are the chat-enabled members of an alias, deduplicated, in
	// the directory's order.
	Members []jid.JID
}

// Config configures a Service.
type Config struct {
	// Directory answers who exists (required). Pass a cache in front of
	// a slow host directory.
	Directory account.Directory
	// Store keeps offline messages (required).
	Store storage.Offline
	// Local reports whether a domain is served by this server (required).
	Local func(domain string) bool
	// OfflineLimit is the most messages kept for one offline user;
	// 0 means 1000.
	OfflineLimit int
	// Archive keeps message history (XEP-0313); nil disables history.
	Archive storage.Archive
	// HistoryLines and HistoryDays bound the window the chat view opens
	// on: the most recent HistoryLines messages (default 75) from the last
	// HistoryDays days (default 30).
	HistoryLines int
	HistoryDays  int
	// SessionGap is the quiet time that ends one chat session (default
	// 30 minutes); see Conversations.
	SessionGap time.Duration
	// Clock returns the time; nil means time.Now. For tests.
	Clock func() time.Time
}

// Service applies the messaging rules. It is safe for concurrent use.
type Service struct {
	cfg Config
	ids idGen
}

// New returns a Service; it panics if a required field is nil, a
// programming error of the caller.
func New(cfg Config) *Service {
	if cfg.Directory == nil || cfg.Store == nil || cfg.Local == nil {
		panic("chat: Config needs Directory, Store and Local")
	}
	if cfg.OfflineLimit <= 0 {
		cfg.OfflineLimit = 1000
	}
	if cfg.HistoryLines <= 0 {
		cfg.HistoryLines = 75
	}
	if cfg.HistoryDays <= 0 {
		cfg.HistoryDays = 30
	}
	if cfg.SessionGap <= 0 {
		cfg.SessionGap = 30 * time.Minute
	}
	return &Service{cfg: cfg}
}

// Resolve tells where a message to the bare address to goes. A user who
// exists but is not chat-enabled gives ErrNotChatEnabled; an unknown
// address ErrNoSuchUser; another domain ErrRemote.
func (s *Service) Resolve(ctx context.Context, to jid.JID) (Target, error) {
	if !s.cfg.Local(to.Domain()) {
		return Target{}, fmt.Errorf("%w: %s", ErrRemote, to.Domain())
	}
	if to.Local() == "" {
		return Target{}, fmt.Errorf("%w: %s is the server itself", ErrNoSuchUser, to.Domain())
	}
	e, err := s.cfg.Directory.Lookup(ctx, to.Address())
	if errors.Is(err, account.ErrNotFound) {
		return Target{}, fmt.Errorf("%w: %s", ErrNoSuchUser, to.Address())
	}
	if err != nil {
		return Target{}, fmt.Errorf("chat: looking up %s: %w", to.Address(), err)
	}
	if e.Kind == account.Alias {
		members, err := s.members(ctx, e.Address)
		if err != nil {
			return Target{}, err
		}
		return Target{Kind: ToAlias, Entry: e, Members: members}, nil
	}
	if !e.ChatEnabled {
		return Target{Kind: ToUser, Entry: e}, fmt.Errorf("%w: %s", ErrNotChatEnabled, to.Address())
	}
	return Target{Kind: ToUser, Entry: e}, nil
}

func (s *Service) members(ctx context.Context, alias string) ([]jid.JID, error) {
	addrs, err := s.cfg.Directory.Members(ctx, alias)
	if err != nil {
		return nil, fmt.Errorf("chat: members of %s: %w", alias, err)
	}
	seen := make(map[jid.JID]bool, len(addrs))
	out := make([]jid.JID, 0, len(addrs))
	for _, a := range addrs {
		j, err := jid.Parse(strings.TrimSpace(a))
		if err != nil || j.Local() == "" || seen[j.Bare()] {
			continue
		}
		j = j.Bare()
		if s.cfg.Local(j.Domain()) {
			e, err := s.cfg.Directory.Lookup(ctx, j.Address())
			if err != nil || e.Kind != account.User || !e.ChatEnabled {
				continue
			}
		}
		seen[j] = true
		out = append(out, j)
	}
	return out, nil
}

// StoreOffline keeps data (a whole message stanza as it will be sent) for
// owner until the next login. It returns ErrOfflineFull when the queue
// holds OfflineLimit messages; nothing is stored then.
func (s *Service) StoreOffline(ctx context.Context, owner jid.JID, stamp time.Time, data []byte) error {
	_, err := s.cfg.Store.PushOffline(ctx, owner.Address(), stamp, data, s.cfg.OfflineLimit)
	if errors.Is(err, storage.ErrLimit) {
		return fmt.Errorf("%w: %s has %d messages waiting", ErrOfflineFull, owner.Address(), s.cfg.OfflineLimit)
	}
	if err != nil {
		return fmt.Errorf("chat: storing offline message for %s: %w", owner.Address(), err)
	}
	return nil
}

// Offline returns owner's waiting messages in the order they came.
func (s *Service) Offline(ctx context.Context, owner jid.JID) ([]storage.OfflineMessage, error) {
	m, err := s.cfg.Store.OfflineMessages(ctx, owner.Address())
	if err != nil {
		return nil, fmt.Errorf("chat: reading offline messages of %s: %w", owner.Address(), err)
	}
	return m, nil
}

// AckOffline drops owner's offline messages up to and including seq, once
// they were handed to a session.
func (s *Service) AckOffline(ctx context.Context, owner jid.JID, seq uint64) error {
	if err := s.cfg.Store.DeleteOffline(ctx, owner.Address(), seq); err != nil {
		return fmt.Errorf("chat: dropping delivered offline messages of %s: %w", owner.Address(), err)
	}
	return nil
}
