package storagetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
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
//   - AppendMessages: archiving one message per call, one call at a time.
//   - AppendMessagesParallel: the same from GOMAXPROCS goroutines, each
//     for its own owner; a store must group these into shared commits.
//   - LatestPage: the newest 75 messages of one conversation (what a chat
//     view opens on) in a 2,000-message archive with 20 contacts.
//   - SearchText/OneWord and /TwoWords: full-text search over the same
//     archive, newest 100 matches.
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

	runArchiveBenchmarks(b, open)

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

// benchWords are the words of benchmark bodies, drawn with a Zipf
// distribution so that, as in chat, a few words are in many messages and
// most are in few.
var benchWords = strings.Fields(`the you to and I it a is that of in we
	for on have this be are not with just what can so do at was me but
	get lunch meeting tomorrow today call later thanks ok yes no maybe
	time now good see will know think how about when there here one
	send file review deploy server release build test bug fix branch
	merge ticket friday monday weekend coffee dinner train airport
	flight hotel budget invoice report draft slides demo customer
	contract schedule agenda notes photo video link password laptop
	phone battery update restart network printer office kitchen
	birthday party gift movie game music concert ticket beach`)

// benchArchive makes n messages of owner's archive with 20 contacts,
// with IDs like Parley's and bodies of 3 to 15 words.
func benchArchive(owner string, n int, seed uint64) []storage.ArchivedMessage {
	rng := rand.New(rand.NewPCG(seed, 1))
	zipf := rand.NewZipf(rng, 1.1, 2, uint64(len(benchWords)-1))
	msgs := make([]storage.ArchivedMessage, n)
	stamp := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range msgs {
		var body strings.Builder
		for k := range 3 + rng.IntN(13) {
			if k > 0 {
				body.WriteByte(' ')
			}
			body.WriteString(benchWords[zipf.Uint64()])
		}
		stamp = stamp.Add(time.Duration(rng.IntN(3600)) * time.Second)
		with := fmt.Sprintf("contact%02d@example.com", rng.IntN(20))
		msgs[i] = storage.ArchivedMessage{
			Owner:    owner,
			ID:       benchID(stamp, i),
			With:     with,
			Stamp:    stamp,
			Outgoing: rng.IntN(2) == 0,
			ClientID: fmt.Sprintf("%08x", rng.Uint32()),
			Body:     body.String(),
			Data: fmt.Appendf(nil, "<message xmlns='jabber:client' from='%s/phone' to='%s' type='chat' id='%08x'>"+
				"<body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%[3]08x'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>",
				owner, with, i, body.String()),
		}
	}
	return msgs
}

// benchID is shaped like Parley's archive IDs: microseconds, a counter
// and a random part, in hex.
func benchID(stamp time.Time, i int) string {
	return fmt.Sprintf("%012x%04x%08x", stamp.UnixMicro(), i&0xffff, uint32(i)*2654435761)
}

func runArchiveBenchmarks(b *testing.B, open func(b *testing.B) storage.Store) {
	ctx := context.Background()
	const archived = 2000
	filled := func(b *testing.B) storage.Store {
		s := open(b)
		msgs := benchArchive(alice, archived, 1)
		for i := 0; i < len(msgs); i += 500 {
			if err := s.AppendMessages(ctx, msgs[i:min(i+500, len(msgs))]); err != nil {
				b.Fatal(err)
			}
		}
		return s
	}

	b.Run("AppendMessages", func(b *testing.B) {
		s := open(b)
		msgs := benchArchive(alice, 1000, 2)
		start := time.Now()
		for i := 0; b.Loop(); i++ {
			// Fresh IDs each round, newer than the last, as in life.
			m := msgs[i%len(msgs)]
			m.ID = benchID(start.Add(time.Duration(i)*time.Microsecond), i)
			if err := s.AppendMessages(ctx, []storage.ArchivedMessage{m}); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("AppendMessagesParallel", func(b *testing.B) {
		s := open(b)
		msgs := benchArchive(alice, 1000, 3)
		start := time.Now()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			owner := fmt.Sprintf("user%d@example.com", next.Add(1))
			for i := 0; pb.Next(); i++ {
				m := msgs[i%len(msgs)]
				m.Owner, m.ID = owner, benchID(start.Add(time.Duration(i)*time.Microsecond), i)
				if err := s.AppendMessages(ctx, []storage.ArchivedMessage{m}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("LatestPage", func(b *testing.B) {
		s := filled(b)
		for i := 0; b.Loop(); i++ {
			msgs, _, err := s.QueryMessages(ctx, alice, storage.ArchiveQuery{
				With: fmt.Sprintf("contact%02d@example.com", i%20), Last: true, Max: 75,
			})
			if err != nil || len(msgs) != 75 {
				b.Fatalf("latest page: %d messages, %v", len(msgs), err)
			}
		}
	})

	b.Run("SearchText", func(b *testing.B) {
		s := filled(b)
		for _, bc := range []struct{ name, text string }{
			{"OneWord", "lunch"},
			{"TwoWords", "meeting tomorrow"},
		} {
			b.Run(bc.name, func(b *testing.B) {
				var found int
				for b.Loop() {
					msgs, _, err := s.QueryMessages(ctx, alice, storage.ArchiveQuery{Text: bc.text, Last: true})
					if err != nil || len(msgs) == 0 {
						b.Fatalf("search %q: %d messages, %v", bc.text, len(msgs), err)
					}
					found = len(msgs)
				}
				b.ReportMetric(float64(found), "found")
			})
		}
	})
}
