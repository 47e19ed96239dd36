package chat

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// Delivery states kept with an archived message, raised by receipts
// (XEP-0184) and chat markers (XEP-0333).
const (
	StateNone      uint8 = 0
	StateReceived  uint8 = 1 // <received/> or <received/> marker
	StateDisplayed uint8 = 2 // <displayed/> marker
	StateAcked     uint8 = 3 // <acknowledged/> marker
)

// ErrNoArchive: the Service was configured without an archive.
var ErrNoArchive = errors.New("chat: no archive configured")

// idGen makes archive ids that sort by time and never repeat: 12 hex
// digits of microseconds since 2020, 4 of a counter within the same
// microsecond, and 8 random ones so ids are not guessable in sequence.
type idGen struct {
	mu   sync.Mutex
	last int64
	seq  uint16
}

var epoch2020 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func (g *idGen) next(now time.Time) string {
	us := now.Sub(epoch2020).Microseconds()
	g.mu.Lock()
	if us <= g.last {
		us = g.last
		g.seq++
		if g.seq == 0 { // 65536 ids in one microsecond: borrow the next one
			us++
		}
	} else {
		g.seq = 0
	}
	g.last = us
	seq := g.seq
	g.mu.Unlock()
	var r [4]byte
	rand.Read(r[:])
	// fmt.Sprintf("%012x%04x%08x", us, seq, random), without fmt (a
	// third of the cost of archiving a message outside the store).
	b := make([]byte, 0, 24)
	b = appendHex(b, uint64(us), 12)
	b = appendHex(b, uint64(seq), 4)
	b = appendHex(b, uint64(binary.BigEndian.Uint32(r[:])), 8)
	return string(b)
}

// appendHex appends x in lower-case hex, zero-padded to width digits.
func appendHex(b []byte, x uint64, width int) []byte {
	n := 1
	for y := x >> 4; y > 0; y >>= 4 {
		n++
	}
	for ; width > n; width-- {
		b = append(b, '0')
	}
	return strconv.AppendUint(b, x, 16)
}

// NewID returns a fresh archive id (XEP-0359 stanza-id). Ids sort in the
// order they were made.
func (s *Service) NewID() string { return s.ids.next(s.now()) }

func (s *Service) now() time.Time {
	if s.cfg.Clock != nil {
		return s.cfg.Clock()
	}
	return time.Now()
}

// Archiving reports whether messages are archived.
func (s *Service) Archiving() bool { return s.cfg.Archive != nil }

func (s *Service) archive() (storage.Archive, error) {
	if s.cfg.Archive == nil {
		return nil, ErrNoArchive
	}
	return s.cfg.Archive, nil
}

// Archive stores messages (both participants' copies of one message,
// typically) before they are delivered; one call is atomic.
func (s *Service) Archive(ctx context.Context, msgs ...storage.ArchivedMessage) error {
	a, err := s.archive()
	if err != nil {
		return err
	}
	if err := a.AppendMessages(ctx, msgs); err != nil {
		return fmt.Errorf("chat: archiving: %w", err)
	}
	return nil
}

// MarkState records a receipt or marker for the message clientID between
// owner and with (never lowering the state). A receipt for a message
// that is not archived is not an error.
func (s *Service) MarkState(ctx context.Context, owner, with jid.JID, clientID string, state uint8) error {
	a, err := s.archive()
	if err != nil {
		return err
	}
	err = a.SetMessageState(ctx, owner.Address(), with.Address(), clientID, state)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("chat: recording delivery state: %w", err)
	}
	return nil
}

// Query runs a raw archive query for owner (what MAM uses).
func (s *Service) Query(ctx context.Context, owner jid.JID, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	a, err := s.archive()
	if err != nil {
		return nil, false, err
	}
	msgs, complete, err := a.QueryMessages(ctx, owner.Address(), q)
	if err != nil {
		return nil, false, fmt.Errorf("chat: querying the archive of %s: %w", owner.Address(), err)
	}
	return msgs, complete, nil
}

// Recent returns the history window the chat view opens on: the most
// recent HistoryLines messages with a contact (default 75), limited to
// the last HistoryDays days (default 30), oldest first. more reports
// whether older messages exist (scrolling up loads them with Before).
func (s *Service) Recent(ctx context.Context, owner, with jid.JID) (msgs []storage.ArchivedMessage, more bool, err error) {
	msgs, complete, err := s.Query(ctx, owner, storage.ArchiveQuery{
		With:  with.Address(),
		Start: s.now().Add(-time.Duration(s.cfg.HistoryDays) * 24 * time.Hour),
		Last:  true,
		Max:   s.cfg.HistoryLines,
	})
	if err != nil {
		return nil, false, err
	}
	if complete && len(msgs) > 0 {
		// The window is complete, but older chats may lie before it.
		older, _, err := s.Query(ctx, owner, storage.ArchiveQuery{With: with.Address(), BeforeID: msgs[0].ID, Last: true, Max: 1})
		if err != nil {
			return nil, false, err
		}
		return msgs, len(older) > 0, nil
	}
	return msgs, !complete, nil
}

// Before returns up to n messages with a contact older than the message
// beforeID, oldest first, and whether there are more before them.
func (s *Service) Before(ctx context.Context, owner, with jid.JID, beforeID string, n int) ([]storage.ArchivedMessage, bool, error) {
	msgs, complete, err := s.Query(ctx, owner, storage.ArchiveQuery{With: with.Address(), BeforeID: beforeID, Last: true, Max: n})
	return msgs, !complete, err
}

// Conversation is one past chat session with a contact: messages with no
// gap longer than Config.SessionGap between them.
type Conversation struct {
	Start, End      time.Time
	FirstID, LastID string
	Messages        int
	// Preview is the first message's text, shortened.
	Preview string
}

// Conversations lists past chat sessions with a contact, newest first, up
// to limit (0: 50). It is the first page of ConversationsBefore.
func (s *Service) Conversations(ctx context.Context, owner, with jid.JID, limit int) ([]Conversation, error) {
	out, _, err := s.ConversationsBefore(ctx, owner, with, "", limit)
	return out, err
}

// MaxSessionScan is how many archived messages one ConversationsBefore
// call reads at most.
const MaxSessionScan = 10000

// ConversationsBefore lists past chat sessions with a contact made of
// messages older than the archive id before ("" for the newest), newest
// first, up to limit (0: 50), and the cursor of the next, older page: the
// FirstID of the oldest session listed, or "" when no older message
// exists. An unknown before is an error wrapping storage.ErrNotFound.
//
// One call reads at most MaxSessionScan messages. A session still open
// at that point is left to the next page, unless it is the only one
// (longer than MaxSessionScan messages): then its newest part is listed,
// and the next page goes on with the rest as a session of its own.
func (s *Service) ConversationsBefore(ctx context.Context, owner, with jid.JID, before string, limit int) ([]Conversation, string, error) {
	if limit <= 0 {
		limit = 50
	}
	var out []Conversation
	read := 0
	var cur *Conversation
	for {
		if read >= MaxSessionScan {
			if len(out) > 0 {
				return out, out[len(out)-1].FirstID, nil
			}
			return []Conversation{*cur}, cur.FirstID, nil
		}
		page, complete, err := s.Query(ctx, owner, storage.ArchiveQuery{With: with.Address(), BeforeID: before, Last: true, Max: min(500, MaxSessionScan-read)})
		if err != nil {
			return nil, "", err
		}
		for i := len(page) - 1; i >= 0; i-- {
			m := page[i]
			if cur != nil && cur.Start.Sub(m.Stamp) > s.cfg.SessionGap {
				out = append(out, *cur)
				if len(out) == limit {
					// m is older than every listed session: there is more.
					return out, cur.FirstID, nil
				}
				cur = nil
			}
			if cur == nil {
				cur = &Conversation{End: m.Stamp, LastID: m.ID}
			}
			cur.Start, cur.FirstID, cur.Preview = m.Stamp, m.ID, preview(m.Body)
			cur.Messages++
		}
		read += len(page)
		if complete || len(page) == 0 {
			break
		}
		before = page[0].ID
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out, "", nil
}

func preview(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		return string(r[:79]) + "…"
	}
	return s
}

// Search finds owner's own messages containing every word of text, with
// anyone or, when with is not zero, with one contact; newest last, up to
// max (0: 100). Only the owner's archive is searched.
func (s *Service) Search(ctx context.Context, owner jid.JID, text string, with jid.JID, max int) ([]storage.ArchivedMessage, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("chat: search needs at least one word")
	}
	q := storage.ArchiveQuery{Text: text, Last: true, Max: max}
	if !with.IsZero() {
		q.With = with.Address()
	}
	msgs, _, err := s.Query(ctx, owner, q)
	return msgs, err
}

// DeleteConversation removes the conversation with a contact from owner's
// history; the contact's copy is theirs and stays.
func (s *Service) DeleteConversation(ctx context.Context, owner, with jid.JID) error {
	a, err := s.archive()
	if err != nil {
		return err
	}
	if err := a.DeleteConversation(ctx, owner.Address(), with.Address()); err != nil {
		return fmt.Errorf("chat: deleting the conversation of %s with %s: %w", owner.Address(), with.Address(), err)
	}
	return nil
}
