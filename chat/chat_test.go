package chat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage/memstore"
)

func newService(t *testing.T) *chat.Service {
	t.Helper()
	d := memdir.New()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.AddUser("alice@example.test", "Alice", "pw", true))
	must(d.AddUser("bob@example.test", "Bob", "pw", true))
	must(d.AddUser("dave@example.test", "Dave", "pw", false))
	must(d.AddAlias("sales@example.test", "Sales", "alice@example.test", "BOB@example.test", "bob@example.test", "dave@example.test", "ext@other.test", "nobody@example.test"))
	return chat.New(chat.Config{Directory: d, Store: memstore.New(), Local: func(s string) bool { return s == "example.test" }, OfflineLimit: 2})
}

func TestResolve(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	tg, err := s.Resolve(ctx, jid.MustParse("alice@example.test"))
	if err != nil || tg.Kind != chat.ToUser || tg.Entry.Name != "Alice" {
		t.Fatalf("alice: %+v %v", tg, err)
	}
	tg, err = s.Resolve(ctx, jid.MustParse("sales@example.test"))
	if err != nil || tg.Kind != chat.ToAlias {
		t.Fatalf("sales: %+v %v", tg, err)
	}
	// Members: deduplicated, chat-enabled local users only, remote kept.
	var got []string
	for _, m := range tg.Members {
		got = append(got, m.String())
	}
	want := []string{"alice@example.test", "bob@example.test", "ext@other.test"}
	if len(got) != len(want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("members %v, want %v", got, want)
		}
	}
	for addr, want := range map[string]error{
		"dave@example.test":   chat.ErrNotChatEnabled,
		"nobody@example.test": chat.ErrNoSuchUser,
		"example.test":        chat.ErrNoSuchUser,
		"x@other.test":        chat.ErrRemote,
	} {
		if _, err := s.Resolve(ctx, jid.MustParse(addr)); !errors.Is(err, want) {
			t.Errorf("Resolve(%s) = %v, want %v", addr, err, want)
		}
	}
}

func TestOfflineQueue(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	bob := jid.MustParse("bob@example.test")
	for i, m := range []string{"one", "two"} {
		if err := s.StoreOffline(ctx, bob, time.Now(), []byte(m)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := s.StoreOffline(ctx, bob, time.Now(), []byte("three")); !errors.Is(err, chat.ErrOfflineFull) {
		t.Fatalf("over the limit: %v", err)
	}
	msgs, err := s.Offline(ctx, bob)
	if err != nil || len(msgs) != 2 || string(msgs[0].Data) != "one" || string(msgs[1].Data) != "two" {
		t.Fatalf("offline: %v %v", msgs, err)
	}
	if err := s.AckOffline(ctx, bob, msgs[0].Seq); err != nil {
		t.Fatal(err)
	}
	msgs, _ = s.Offline(ctx, bob)
	if len(msgs) != 1 || string(msgs[0].Data) != "two" {
		t.Fatalf("after ack: %v", msgs)
	}
}
