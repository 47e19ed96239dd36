package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/storage/memstore"
)

// TestArchiveMatchesMemstore runs random appends, state changes, deletes
// and queries against boltstore and memstore, the reference, and wants
// the same answers from both: the conformance tests pin the rules with
// chosen cases, this looks for the cases nobody chose (block splits,
// cursors at block edges, text rules beyond the contract's examples).
func TestArchiveMatchesMemstore(t *testing.T) {
	ctx := context.Background()
	steps := 3000
	if testing.Short() {
		steps = 500
	}
	bs := open(t, filepath.Join(t.TempDir(), "parley.db"), &boltstore.Options{NoSync: true})
	defer bs.Close()
	ms := memstore.New()
	defer ms.Close()

	rng := rand.New(rand.NewPCG(7, 11))
	owners := []string{"alice@example.com", "bob@example.com", "alice@example.com.org"}
	contacts := []string{"bob@example.com", "carol@example.org", "bob@example.com.org", "用户@例子.测试"}
	vocab := []string{"lunch", "Lunch", "LUNCH?", "lunchtime", "today", "plan", "the", "a", "42", "привет",
		"École", "ecole", "午饭", "午", "饭", "吃午饭吧", "Tシャツ", "シャツ", "학교에서", "학교", "ΟΔΟΣ", "οδος",
		"ＬＵＮＣＨ", "naïve", strings.Repeat("long", 20), strings.Repeat("long", 21)}
	seps := []string{" ", ", ", "-", "", "! ", "\n"}
	body := func() string {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteString(seps[rng.IntN(len(seps))])
		}
		return b.String()
	}
	ids := make(map[string][]string) // owner -> IDs appended (maybe deleted since)
	newID := func() string {
		// Mostly increasing, as Parley makes them; sometimes from the past.
		n := 1_000_000 + rng.IntN(1_000_000)
		if rng.IntN(4) > 0 {
			n = int(time.Now().UnixMicro() % 1e12)
		}
		return fmt.Sprintf("%012x%04x%08x", n, rng.IntN(4), rng.Uint32())
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	stampBase := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	for step := range steps {
		switch op := rng.IntN(100); {
		case op < 40:
			var batch []storage.ArchivedMessage
			for range 1 + rng.IntN(20) {
				o := pick(owners)
				id := newID()
				if rng.IntN(60) == 0 && len(ids[o]) > 0 {
					id = pick(ids[o]) // a duplicate, maybe
				}
				batch = append(batch, storage.ArchivedMessage{
					Owner: o, ID: id, With: pick(contacts),
					Stamp:    stampBase.Add(time.Duration(rng.IntN(1000)) * time.Minute),
					Outgoing: rng.IntN(2) == 0,
					ClientID: fmt.Sprint("c", rng.IntN(30)),
					Body:     body(),
					Data:     []byte(fmt.Sprint("<message n='", step, "'/>")),
				})
			}
			eb, em := bs.AppendMessages(ctx, batch), ms.AppendMessages(ctx, batch)
			if (eb == nil) != (em == nil) {
				t.Fatalf("step %d: AppendMessages: boltstore %v, memstore %v", step, eb, em)
			}
			if eb == nil {
				for _, m := range batch {
					ids[m.Owner] = append(ids[m.Owner], m.ID)
				}
			}
		case op < 50:
			o, w, c, st := pick(owners), pick(contacts), fmt.Sprint("c", rng.IntN(32)), uint8(rng.IntN(5))
			eb, em := bs.SetMessageState(ctx, o, w, c, st), ms.SetMessageState(ctx, o, w, c, st)
			if errors.Is(eb, storage.ErrNotFound) != errors.Is(em, storage.ErrNotFound) || (eb == nil) != (em == nil) {
				t.Fatalf("step %d: SetMessageState: boltstore %v, memstore %v", step, eb, em)
			}
		case op < 53:
			o, w := pick(owners), pick(contacts)
			if err := bs.DeleteConversation(ctx, o, w); err != nil {
				t.Fatal(err)
			}
			if err := ms.DeleteConversation(ctx, o, w); err != nil {
				t.Fatal(err)
			}
		default:
			o := pick(owners)
			q := storage.ArchiveQuery{Last: rng.IntN(2) == 0, Max: rng.IntN(12)}
			if rng.IntN(2) == 0 {
				q.With = pick(contacts)
			}
			if rng.IntN(3) == 0 && len(ids[o]) > 0 {
				q.AfterID = pick(ids[o])
			}
			if rng.IntN(3) == 0 && len(ids[o]) > 0 {
				q.BeforeID = pick(ids[o])
			}
			if rng.IntN(20) == 0 {
				q.AfterID = newID()
			}
			if rng.IntN(5) == 0 {
				q.Start = stampBase.Add(time.Duration(rng.IntN(1000)) * time.Minute)
			}
			if rng.IntN(5) == 0 {
				q.End = stampBase.Add(time.Duration(rng.IntN(1000)) * time.Minute)
			}
			switch rng.IntN(4) {
			case 0:
				q.Text = body()
			case 1:
				q.Text = pick(vocab)
			case 2:
				q.Text = pick(vocab) + pick(seps) + pick(vocab)
			}
			gb, cb, eb := bs.QueryMessages(ctx, o, q)
			gm, cm, em := ms.QueryMessages(ctx, o, q)
			if errors.Is(eb, storage.ErrNotFound) != errors.Is(em, storage.ErrNotFound) || (eb == nil) != (em == nil) {
				t.Fatalf("step %d: QueryMessages(%q, %+v): boltstore %v, memstore %v", step, o, q, eb, em)
			}
			if cb != cm || len(gb) != len(gm) {
				t.Fatalf("step %d: QueryMessages(%q, %+v):\nboltstore %d messages, complete %v\n memstore %d messages, complete %v",
					step, o, q, len(gb), cb, len(gm), cm)
			}
			for i := range gb {
				a, b := gb[i], gm[i]
				if a.Owner != b.Owner || a.ID != b.ID || a.With != b.With || !a.Stamp.Equal(b.Stamp) ||
					a.Outgoing != b.Outgoing || a.ClientID != b.ClientID || a.Body != b.Body ||
					!bytes.Equal(a.Data, b.Data) || a.State != b.State {
					t.Fatalf("step %d: QueryMessages(%q, %+v) message %d:\nboltstore %+v\n memstore %+v", step, o, q, i, a, b)
				}
			}
		}
	}
	// Finally every archive, whole.
	for _, o := range owners {
		for _, s := range []storage.Store{bs, ms} {
			msgs, _, err := s.QueryMessages(ctx, o, storage.ArchiveQuery{Max: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSortedFunc(msgs, func(a, b storage.ArchivedMessage) int { return strings.Compare(a.ID, b.ID) }) {
				t.Errorf("%T: %s's archive out of order", s, o)
			}
		}
	}
}
