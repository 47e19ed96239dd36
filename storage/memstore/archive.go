package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/parleyhq/parley/storage"
)

// archive is one owner's message history, in ID order. It is the
// reference for the archive rules: every query is a plain scan, kept
// obviously correct rather than fast.
type archive struct {
	msgs []archived
}

// archived is a stored message and its Body cut into tokens for Text.
type archived struct {
	m      storage.ArchivedMessage
	tokens []storage.Token
}

// find returns the position of id in a, or where it would go.
func (a *archive) find(id string) (int, bool) {
	return slices.BinarySearchFunc(a.msgs, id, func(x archived, id string) int {
		return strings.Compare(x.m.ID, id)
	})
}

// AppendMessages stores msgs atomically: when one of them has an empty
// owner, ID or With, or an ID its owner's archive already holds (or that
// comes twice in msgs), nothing is stored.
func (s *Store) AppendMessages(ctx context.Context, msgs []storage.ArchivedMessage) error {
	kept := make([]archived, len(msgs))
	for i, m := range msgs {
		if m.Owner == "" || m.ID == "" || m.With == "" {
			return errEmpty
		}
		m.Stamp = m.Stamp.Round(0).UTC()
		m.Data = slices.Clone(m.Data)
		kept[i] = archived{m: m, tokens: storage.Tokenize(m.Body)}
	}
	return s.write(ctx, func() error {
		type key struct{ owner, id string }
		seen := make(map[key]bool, len(msgs))
		for _, m := range msgs {
			k := key{m.Owner, m.ID}
			dup := seen[k]
			if u := s.owner(m.Owner, false); u != nil && !dup {
				_, dup = u.archive.find(m.ID)
			}
			if dup {
				return fmt.Errorf("memstore: the archive of %q already holds id %q", m.Owner, m.ID)
			}
			seen[k] = true
		}
		for _, k := range kept {
			a := &s.owner(k.m.Owner, true).archive
			i, _ := a.find(k.m.ID)
			a.msgs = slices.Insert(a.msgs, i, k)
		}
		return nil
	})
}

// QueryMessages returns the messages q selects, in ID order.
func (s *Store) QueryMessages(ctx context.Context, owner string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	var (
		out      []storage.ArchivedMessage
		complete bool
	)
	err := s.read(ctx, func() error {
		var msgs []archived
		if u := s.owner(owner, false); u != nil {
			msgs = u.archive.msgs
		}
		lo, hi := 0, len(msgs) // the range (AfterID, BeforeID)
		a := &archive{msgs: msgs}
		if q.AfterID != "" {
			i, ok := a.find(q.AfterID)
			if !ok {
				return fmt.Errorf("memstore: AfterID %q: %w", q.AfterID, storage.ErrNotFound)
			}
			lo = i + 1
		}
		if q.BeforeID != "" {
			i, ok := a.find(q.BeforeID)
			if !ok {
				return fmt.Errorf("memstore: BeforeID %q: %w", q.BeforeID, storage.ErrNotFound)
			}
			hi = i
		}
		limit := q.Max
		if limit <= 0 {
			limit = 100
		}
		words := storage.QueryWords(q.Text)
		match := func(x *archived) bool {
			m := &x.m
			if q.With != "" && m.With != q.With ||
				!q.Start.IsZero() && m.Stamp.Before(q.Start) ||
				!q.End.IsZero() && m.Stamp.After(q.End) {
				return false
			}
			for _, w := range words {
				if !storage.ContainsWord(x.tokens, w) {
					return false
				}
			}
			return true
		}
		// One match more than the page tells whether the page is the
		// end of the selection.
		var page []*archived
		if q.Last {
			for i := hi - 1; i >= lo && len(page) <= limit; i-- {
				if match(&msgs[i]) {
					page = append(page, &msgs[i])
				}
			}
		} else {
			for i := lo; i < hi && len(page) <= limit; i++ {
				if match(&msgs[i]) {
					page = append(page, &msgs[i])
				}
			}
		}
		complete = len(page) <= limit
		page = page[:min(len(page), limit)]
		if q.Last {
			slices.Reverse(page)
		}
		if len(page) > 0 {
			out = make([]storage.ArchivedMessage, len(page))
			for i, x := range page {
				out[i] = x.m
				out[i].Data = slices.Clone(x.m.Data)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, complete, nil
}

// SetMessageState raises the State of owner's newest message with
// clientID exchanged with with. A message without a ClientID is never
// found.
func (s *Store) SetMessageState(ctx context.Context, owner, with, clientID string, state uint8) error {
	return s.write(ctx, func() error {
		u := s.owner(owner, false)
		if u == nil || clientID == "" {
			return storage.ErrNotFound
		}
		msgs := u.archive.msgs
		for i := len(msgs) - 1; i >= 0; i-- {
			if m := &msgs[i].m; m.With == with && m.ClientID == clientID {
				m.State = max(m.State, state)
				return nil
			}
		}
		return storage.ErrNotFound
	})
}

// DeleteConversation removes owner's messages with with.
func (s *Store) DeleteConversation(ctx context.Context, owner, with string) error {
	return s.write(ctx, func() error {
		if u := s.owner(owner, false); u != nil {
			u.archive.msgs = slices.DeleteFunc(u.archive.msgs, func(x archived) bool { return x.m.With == with })
		}
		return nil
	})
}
