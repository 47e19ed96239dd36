package storagetest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

// A Faulty that never fails must be indistinguishable from what it wraps.
func TestFaultyPassThroughConforms(t *testing.T) {
	storagetest.RunConformanceTests(t, func(t *testing.T) storage.Store {
		return &storagetest.Faulty{Store: memstore.New(), FailAfter: -1}
	})
}

func TestFaultyFailsEveryWriteKind(t *testing.T) {
	ctx := context.Background()
	writes := map[string]func(s storage.Store) error{
		"PutRosterItem": func(s storage.Store) error {
			_, err := s.PutRosterItem(ctx, "a@x", storage.RosterItem{Contact: "b@x"})
			return err
		},
		"DeleteRosterItem": func(s storage.Store) error { _, err := s.DeleteRosterItem(ctx, "a@x", "b@x"); return err },
		"PushOffline":      func(s storage.Store) error { _, err := s.PushOffline(ctx, "a@x", time.Now(), nil, 0); return err },
		"DeleteOffline":    func(s storage.Store) error { return s.DeleteOffline(ctx, "a@x", 1) },
		"PutUserData":      func(s storage.Store) error { return s.PutUserData(ctx, "a@x", "k", nil) },
		"DeleteUserData":   func(s storage.Store) error { return s.DeleteUserData(ctx, "a@x", "k") },
		"AppendMessages": func(s storage.Store) error {
			return s.AppendMessages(ctx, []storage.ArchivedMessage{{Owner: "a@x", ID: "1", With: "b@x"}})
		},
		"SetMessageState":    func(s storage.Store) error { return s.SetMessageState(ctx, "a@x", "b@x", "c1", 1) },
		"DeleteConversation": func(s storage.Store) error { return s.DeleteConversation(ctx, "a@x", "b@x") },
	}
	for name, write := range writes {
		f := &storagetest.Faulty{Store: memstore.New()} // FailAfter 0: all fail
		if err := write(f); !errors.Is(err, storagetest.ErrInjected) {
			t.Errorf("%s: err = %v, want ErrInjected", name, err)
		}
		if n := f.Writes(); n != 1 {
			t.Errorf("%s: Writes() = %d, want 1", name, n)
		}
		f.Close()
	}
}

func TestFaultyFailsFromNthWriteAndTouchesNothing(t *testing.T) {
	ctx := context.Background()
	inner := memstore.New()
	f := &storagetest.Faulty{Store: inner, FailAfter: 2}
	defer f.Close()

	v1, err := f.PutRosterItem(ctx, "a@x", storage.RosterItem{Contact: "b@x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.PutUserData(ctx, "a@x", "vcard", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	// Third and later writes fail and never reach the inner store.
	if _, err := f.PutRosterItem(ctx, "a@x", storage.RosterItem{Contact: "c@x"}); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("third write: err = %v, want ErrInjected", err)
	}
	if err := f.PutUserData(ctx, "a@x", "vcard", []byte("v2")); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("fourth write: err = %v, want ErrInjected", err)
	}
	items, v, err := inner.Roster(ctx, "a@x")
	if err != nil || len(items) != 1 || v != v1 {
		t.Errorf("inner roster after failed write = %+v, version %d, %v; want 1 item, version %d", items, v, err, v1)
	}
	// Reads go through even while writes fail.
	if got, err := f.UserData(ctx, "a@x", "vcard"); err != nil || string(got) != "v1" {
		t.Errorf("read through Faulty = %q, %v; want v1", got, err)
	}
	if n := f.Writes(); n != 4 {
		t.Errorf("Writes() = %d, want 4", n)
	}

	f.SetFailAfter(1)
	if err := f.PutUserData(ctx, "a@x", "vcard", []byte("v3")); err != nil {
		t.Fatalf("after SetFailAfter(1): %v", err)
	}
	if err := f.PutUserData(ctx, "a@x", "vcard", []byte("v4")); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("second write after SetFailAfter(1): err = %v, want ErrInjected", err)
	}
	if got, _ := inner.UserData(ctx, "a@x", "vcard"); string(got) != "v3" {
		t.Errorf("inner value = %q, want v3", got)
	}
}

func TestFaultyConcurrentCount(t *testing.T) {
	ctx := context.Background()
	f := &storagetest.Faulty{Store: memstore.New(), FailAfter: 50}
	defer f.Close()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for range 10 {
		wg.Go(func() {
			for range 10 {
				_, err := f.PushOffline(ctx, "a@x", time.Now(), nil, 0)
				if errors.Is(err, storagetest.ErrInjected) {
					mu.Lock()
					failed++
					mu.Unlock()
				} else if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	msgs, _ := f.OfflineMessages(ctx, "a@x")
	if failed != 50 || len(msgs) != 50 {
		t.Errorf("%d failed, %d stored; want 50 and 50", failed, len(msgs))
	}
}

func TestFaultyArchive(t *testing.T) {
	ctx := context.Background()
	inner := memstore.New()
	f := &storagetest.Faulty{Store: inner, FailAfter: 1}
	defer f.Close()
	msg := func(id, body string) storage.ArchivedMessage {
		return storage.ArchivedMessage{Owner: "a@x", ID: id, With: "b@x", ClientID: "c" + id, Body: body}
	}
	// A batch is one write.
	if err := f.AppendMessages(ctx, []storage.ArchivedMessage{msg("1", "kept"), msg("2", "kept too")}); err != nil {
		t.Fatal(err)
	}
	if err := f.AppendMessages(ctx, []storage.ArchivedMessage{msg("3", "lost")}); !errors.Is(err, storagetest.ErrInjected) {
		t.Fatalf("second append: err = %v, want ErrInjected", err)
	}
	if err := f.SetMessageState(ctx, "a@x", "b@x", "c1", 2); !errors.Is(err, storagetest.ErrInjected) {
		t.Errorf("SetMessageState: err = %v, want ErrInjected", err)
	}
	if err := f.DeleteConversation(ctx, "a@x", "b@x"); !errors.Is(err, storagetest.ErrInjected) {
		t.Errorf("DeleteConversation: err = %v, want ErrInjected", err)
	}
	// Reads go through, and are not writes.
	msgs, complete, err := f.QueryMessages(ctx, "a@x", storage.ArchiveQuery{Text: "kept"})
	if err != nil || !complete || len(msgs) != 2 || msgs[0].State != 0 {
		t.Errorf("QueryMessages through Faulty = %+v, %v, %v; want the two kept, State 0", msgs, complete, err)
	}
	if n := f.Writes(); n != 4 {
		t.Errorf("Writes() = %d, want 4", n)
	}
	if msgs, _, _ := inner.QueryMessages(ctx, "a@x", storage.ArchiveQuery{}); len(msgs) != 2 {
		t.Errorf("inner archive holds %d messages, want 2", len(msgs))
	}
}
