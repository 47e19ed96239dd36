package storagetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

// benchStanza is the size of a typical chat message stanza with a body,
// an id, a delay stamp and a receipt request.
var benchStanza = make([]byte, 512)

// RunBenchmarks runs the shared storage benchmarks against the stores
// made by newStore, which must return an empty store each time it is
// called; RunBenchmarks closes it. The sub-benchmarks are the hot paths of
// a chat server:
//
//   - PutRosterItem: replacing items in a 100-item roster.
//   - Roster: loading a 100-item roster at login.
//   - PushOffline: storing a message for an offline user, one at a time.
//   - PushOfflineParallel: the same from GOMAXPROCS goroutines, each for its
//     own recipient, which is where a store that groups commits shines.
//   - OfflineMessages: reading a 100-message queue at login.
//   - PutUserData and UserData: a 2 KiB vCard.
func RunBenchmarks(b *testing.B, newStore func(b *testing.B) storage.Store) {
	open := func(b *testing.B) storage.Store {
		s := newStore(b)
		b.Cleanup(func() { s.Close() })
		return s
	}
	ctx := context.Background()
	items := make([]storage.RosterItem, 100)
	for i := range items {
		items[i] = storage.RosterItem{
			Contact:      fmt.Sprintf("contact%03d@example.com", i),
			Name:         fmt.Sprintf("Contact Number %d", i),
			Groups:       []string{"Colleagues"},
			Subscription: storage.SubBoth,
		}
	}
	fill := func(b *testing.B, s storage.Store) {
		for _, it := range items {
			if _, err := s.PutRosterItem(ctx, alice, it); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("PutRosterItem", func(b *testing.B) {
		s := open(b)
		fill(b, s)
		for i := 0; b.Loop(); i++ {
			if _, err := s.PutRosterItem(ctx, alice, items[i%len(items)]); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Roster", func(b *testing.B) {
		s := open(b)
		fill(b, s)
		for b.Loop() {
			got, _, err := s.Roster(ctx, alice)
			if err != nil || len(got) != len(items) {
				b.Fatalf("Roster: %d items, %v", len(got), err)
			}
		}
	})

	b.Run("PushOffline", func(b *testing.B) {
		s := open(b)
		stamp := time.Now()
		for i := 0; b.Loop(); i++ {
			seq, err := s.PushOffline(ctx, alice, stamp, benchStanza, 0)
			if err != nil {
				b.Fatal(err)
			}
			// Drain now and then so a long run measures pushes into a
			// realistic queue rather than an ever larger one.
			if i%1000 == 999 {
				b.StopTimer()
				if err := s.DeleteOffline(ctx, alice, seq); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	})

	b.Run("PushOfflineParallel", func(b *testing.B) {
		s := open(b)
		stamp := time.Now()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			owner := fmt.Sprintf("user%d@example.com", next.Add(1))
			for i := 0; pb.Next(); i++ {
				seq, err := s.PushOffline(ctx, owner, stamp, benchStanza, 0)
				if err != nil {
					b.Error(err)
					return
				}
				// Timed, unlike above (RunParallel cannot stop the
				// timer), but one delete per 1000 pushes is noise.
				if i%1000 == 999 {
					if err := s.DeleteOffline(ctx, owner, seq); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	})

	b.Run("OfflineMessages", func(b *testing.B) {
		s := open(b)
		for range 100 {
			if _, err := s.PushOffline(ctx, alice, time.Now(), benchStanza, 0); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			msgs, err := s.OfflineMessages(ctx, alice)
			if err != nil || len(msgs) != 100 {
				b.Fatalf("OfflineMessages: %d, %v", len(msgs), err)
			}
		}
	})

	vcard := make([]byte, 2<<10)
	b.Run("PutUserData", func(b *testing.B) {
		s := open(b)
		for b.Loop() {
			if err := s.PutUserData(ctx, alice, "vcard", vcard); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("UserData", func(b *testing.B) {
		s := open(b)
		if err := s.PutUserData(ctx, alice, "vcard", vcard); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.UserData(ctx, alice, "vcard"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
