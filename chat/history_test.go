package chat_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var (
	alice = jid.MustParse("alice@example.test")
	bob   = jid.MustParse("bob@example.test")
	carol = jid.MustParse("carol@example.test")
)

func historyService(t *testing.T, clk *clock) *chat.Service {
	d := memdir.New()
	st := memstore.New()
	return chat.New(chat.Config{Directory: d, Store: st, Archive: st, Local: func(string) bool { return true }, Clock: clk.now})
}

// say archives one message from -> to at the clock's time, both copies.
func say(t *testing.T, s *chat.Service, clk *clock, from, to jid.JID, body string) string {
	t.Helper()
	id := s.NewID()
	m := storage.ArchivedMessage{ID: id, Stamp: clk.t, Body: body, ClientID: "c-" + id, Data: []byte("<message><body>" + body + "</body></message>")}
	out, in := m, m
	out.Owner, out.With, out.Outgoing = from.String(), to.String(), true
	in.Owner, in.With = to.String(), from.String()
	if err := s.Archive(context.Background(), out, in); err != nil {
		t.Fatal(err)
	}
	return id
}

func bodies(msgs []storage.ArchivedMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Body)
	}
	return out
}

func TestRecentWindowAndScrollBack(t *testing.T) {
	clk := &clock{time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	s := historyService(t, clk)
	ctx := context.Background()
	// 40 messages 60 days ago, then 100 recent ones.
	for i := 0; i < 40; i++ {
		say(t, s, clk, alice, bob, fmt.Sprintf("old %d", i))
		clk.t = clk.t.Add(time.Minute)
	}
	clk.t = clk.t.Add(60 * 24 * time.Hour)
	for i := 0; i < 100; i++ {
		say(t, s, clk, bob, alice, fmt.Sprintf("new %d", i))
		clk.t = clk.t.Add(time.Minute)
	}
	msgs, more, err := s.Recent(ctx, alice, bob)
	if err != nil || len(msgs) != 75 || msgs[0].Body != "new 25" || msgs[74].Body != "new 99" || !more {
		t.Fatalf("window: %d msgs, first %q, more %v, err %v", len(msgs), msgs[0].Body, more, err)
	}
	// Scrolling up: the 25 recent ones before, then the old ones.
	older, more, err := s.Before(ctx, alice, bob, msgs[0].ID, 50)
	if err != nil || len(older) != 50 || older[49].Body != "new 24" || older[0].Body != "old 15" || !more {
		t.Fatalf("older: %v more=%v err=%v", bodies(older), more, err)
	}
	oldest, more, _ := s.Before(ctx, alice, bob, older[0].ID, 50)
	if len(oldest) != 15 || oldest[0].Body != "old 0" || more {
		t.Fatalf("oldest: %d more=%v", len(oldest), more)
	}
	// With only messages older than 30 days, the window is empty but says
	// there is more to scroll to.
	clk.t = clk.t.Add(40 * 24 * time.Hour)
	msgs, more, _ = s.Recent(ctx, carol, bob)
	if len(msgs) != 0 || more {
		t.Fatalf("no conversation: %v %v", msgs, more)
	}
}

func TestConversationsSplitByQuietGap(t *testing.T) {
	clk := &clock{time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	s := historyService(t, clk)
	for session := 0; session < 3; session++ {
		for i := 0; i < 4; i++ {
			say(t, s, clk, alice, bob, fmt.Sprintf("s%d m%d", session, i))
			clk.t = clk.t.Add(5 * time.Minute)
		}
		clk.t = clk.t.Add(2 * time.Hour)
	}
	convs, err := s.Conversations(context.Background(), alice, bob, 0)
	if err != nil || len(convs) != 3 {
		t.Fatalf("conversations: %+v %v", convs, err)
	}
	if convs[0].Preview != "s2 m0" || convs[0].Messages != 4 || convs[2].Preview != "s0 m0" || !convs[0].Start.After(convs[1].End) {
		t.Fatalf("newest first with previews: %+v", convs)
	}
}

func TestSearchAndDeleteAreOwnersOnly(t *testing.T) {
	clk := &clock{time.Now()}
	s := historyService(t, clk)
	ctx := context.Background()
	say(t, s, clk, alice, bob, "Lunch at noon?")
	say(t, s, clk, bob, alice, "lunch is fine")
	say(t, s, clk, carol, bob, "lunch with carol")
	got, err := s.Search(ctx, alice, "LUNCH", jid.JID{}, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("alice's search: %v %v", bodies(got), err)
	}
	for _, m := range got {
		if m.Owner != alice.String() {
			t.Fatalf("search returned another user's copy: %+v", m)
		}
	}
	if _, err := s.Search(ctx, alice, "  ", jid.JID{}, 0); err == nil {
		t.Fatal("empty search should be refused")
	}
	if err := s.DeleteConversation(ctx, alice, bob); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Search(ctx, alice, "lunch", jid.JID{}, 0); len(got) != 0 {
		t.Fatalf("after delete: %v", bodies(got))
	}
	if got, _ := s.Search(ctx, bob, "lunch", alice, 0); len(got) != 2 {
		t.Fatalf("bob's copy must stay: %v", bodies(got))
	}
}
