package storagetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

// RoomsStore is what RunRoomsTests needs: storage.Rooms and Close. A
// storage.Store is one.
type RoomsStore interface {
	storage.Rooms
	Close() error
}

// RunRoomsTests checks that the stores made by newStore keep the
// storage.Rooms contract, under the same rules as RunConformanceTests (a
// fresh empty store per subtest, closed when it ends).
func RunRoomsTests[S RoomsStore](t *testing.T, newStore func(t *testing.T) S) {
	t.Helper()
	open := func(t *testing.T) S {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		fn   func(*testing.T, RoomsStore)
	}{
		{"PutGet", testRoomPutGet},
		{"Replace", testRoomReplace},
		{"Delete", testRoomDelete},
		{"List", testRoomList},
		{"NoAliasing", testRoomNoAliasing},
		{"Concurrent", testRoomConcurrent},
	}
	for _, tc := range tests {
		t.Run("Rooms/"+tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var roomEpoch = time.Date(2026, 4, 7, 10, 30, 0, 0, time.UTC)

// sampleRoom is room n with every field set.
func sampleRoom(n int) storage.Room {
	return storage.Room{
		JID:           fmt.Sprintf("room%03d@conference.example.com", n),
		Created:       roomEpoch.Add(time.Duration(n) * time.Minute),
		Name:          fmt.Sprintf("Room %d ☕ Café", n),
		Description:   "Where <things> & \"stuff\" happen",
		Language:      "fr",
		Public:        true,
		MembersOnly:   true,
		Moderated:     true,
		Password:      "sésame ouvre-toi",
		WhoIs:         1,
		AllowPM:       2,
		Broadcast:     7,
		MemberList:    4,
		MaxUsers:      30,
		MaxHistory:    25,
		ChangeSubject: true,
		AllowInvites:  true,
		Archive:       true,
		Subject:       "Quarterly numbers 📈",
		SubjectNick:   "Alice L.",
		SubjectStamp:  roomEpoch.Add(time.Hour),
		Alias:         "sales@example.com",
		Affiliations: []storage.RoomAffiliation{
			{JID: alice, Affiliation: 4, Nick: "alice"},
			{JID: bob, Affiliation: 2, Nick: "Bob ✓", Reason: "welcome"},
			{JID: "evil.example.net", Affiliation: 1, Reason: "spam"},
		},
	}
}

func sameRoom(a, b storage.Room) bool {
	a.Created, b.Created = a.Created.UTC(), b.Created.UTC()
	a.SubjectStamp, b.SubjectStamp = a.SubjectStamp.UTC(), b.SubjectStamp.UTC()
	if len(a.Affiliations) == 0 && len(b.Affiliations) == 0 {
		a.Affiliations, b.Affiliations = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func testRoomPutGet(t *testing.T, s RoomsStore) {
	if _, err := s.Room(ctx(), "room001@conference.example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Room of an empty store: err = %v, want ErrNotFound", err)
	}
	r := sampleRoom(1)
	if err := s.PutRoom(ctx(), r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Room(ctx(), r.JID)
	if err != nil || !sameRoom(got, r) {
		t.Fatalf("Room = %+v, %v\nwant %+v", got, err, r)
	}
	// A room with nothing but its JID comes back empty.
	z := storage.Room{JID: "z@conference.example.com"}
	if err := s.PutRoom(ctx(), z); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Room(ctx(), z.JID); err != nil || !sameRoom(got, z) || !got.Created.IsZero() {
		t.Errorf("empty room = %+v, %v", got, err)
	}
}

func testRoomReplace(t *testing.T, s RoomsStore) {
	r := sampleRoom(1)
	if err := s.PutRoom(ctx(), r); err != nil {
		t.Fatal(err)
	}
	r.Name = "Renamed"
	r.Password = ""
	r.Affiliations = r.Affiliations[:1]
	r.Subject = ""
	if err := s.PutRoom(ctx(), r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Room(ctx(), r.JID); err != nil || !sameRoom(got, r) {
		t.Errorf("after replace: %+v, %v\nwant %+v", got, err, r)
	}
}

func testRoomDelete(t *testing.T, s RoomsStore) {
	if err := s.DeleteRoom(ctx(), "nope@conference.example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRoom of a missing room: err = %v, want ErrNotFound", err)
	}
	for i := 1; i <= 2; i++ {
		if err := s.PutRoom(ctx(), sampleRoom(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRoom(ctx(), sampleRoom(1).JID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Room(ctx(), sampleRoom(1).JID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted room: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Room(ctx(), sampleRoom(2).JID); err != nil {
		t.Errorf("the other room went too: %v", err)
	}
	// The JID can be used again.
	if err := s.PutRoom(ctx(), sampleRoom(1)); err != nil {
		t.Errorf("PutRoom after delete: %v", err)
	}
}

func testRoomList(t *testing.T, s RoomsStore) {
	if rs, err := s.ListRooms(ctx(), "", 0); err != nil || len(rs) != 0 {
		t.Errorf("ListRooms of an empty store = %d rooms, %v", len(rs), err)
	}
	const n = 125
	for _, i := range shuffled(n) {
		if err := s.PutRoom(ctx(), sampleRoom(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	after := ""
	for page := 0; ; page++ {
		rs, err := s.ListRooms(ctx(), after, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		if len(rs) > 50 {
			t.Fatalf("page %d has %d rooms, max 50", page, len(rs))
		}
		for _, r := range rs {
			all = append(all, r.JID)
		}
		after = rs[len(rs)-1].JID
	}
	if len(all) != n || !slices.IsSorted(all) {
		t.Errorf("paged listing: %d rooms, sorted %v", len(all), slices.IsSorted(all))
	}
	if rs, _ := s.ListRooms(ctx(), "", 0); len(rs) != 100 {
		t.Errorf("ListRooms max 0 gave %d rooms, want 100", len(rs))
	}
	// afterJID need not be a stored room.
	if rs, _ := s.ListRooms(ctx(), "room050@conference.example.com0", 1); len(rs) != 1 || rs[0].JID != sampleRoom(51).JID {
		t.Errorf("ListRooms after a missing JID: %+v", rs)
	}
	if got := mustRoom(t, s, sampleRoom(7).JID); !sameRoom(got, sampleRoom(7)) {
		t.Errorf("listed room differs from stored")
	}
}

// shuffled is a fixed shuffle of 0..n-1, so insertion order is not JID order.
func shuffled(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*37 + 11) % n
	}
	return out
}

func mustRoom(t *testing.T, s RoomsStore, jid string) storage.Room {
	t.Helper()
	r, err := s.Room(ctx(), jid)
	if err != nil {
		t.Fatalf("Room(%s): %v", jid, err)
	}
	return r
}

func testRoomNoAliasing(t *testing.T, s RoomsStore) {
	r := sampleRoom(1)
	if err := s.PutRoom(ctx(), r); err != nil {
		t.Fatal(err)
	}
	r.Affiliations[0].Nick = "mutated after put"
	got := mustRoom(t, s, r.JID)
	if got.Affiliations[0].Nick != "alice" {
		t.Fatalf("store aliases the Affiliations it was given")
	}
	got.Affiliations[0].Nick = "mutated after get"
	if again := mustRoom(t, s, r.JID); again.Affiliations[0].Nick != "alice" {
		t.Errorf("store aliases the Affiliations it returned")
	}
	list, _ := s.ListRooms(ctx(), "", 0)
	list[0].Affiliations[0].Nick = "mutated after list"
	if again := mustRoom(t, s, r.JID); again.Affiliations[0].Nick != "alice" {
		t.Errorf("store aliases the Affiliations ListRooms returned")
	}
}

func testRoomConcurrent(t *testing.T, s RoomsStore) {
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				r := sampleRoom(w*20 + i)
				if err := s.PutRoom(ctx(), r); err != nil {
					errs <- err
					return
				}
				if _, err := s.Room(ctx(), r.JID); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListRooms(ctx(), "", 10); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, _ := s.ListRooms(ctx(), "", 1000)
	if len(all) != 160 {
		t.Errorf("%d rooms after concurrent puts, want 160", len(all))
	}
}
