// Package storagetest is the contract of package storage written as tests:
// every store Parley ships runs it, and so should any adapter an
// integrator writes (PostgreSQL, say).
//
// Run the conformance tests from your adapter's test file with a function
// that returns a new, empty store:
//
//	func TestConformance(t *testing.T) {
//		storagetest.RunConformanceTests(t, func(t *testing.T) storage.Store {
//			return myadapter.Open(t, freshSchema(t))
//		})
//	}
//
// and the shared benchmarks the same way with RunBenchmarks, so numbers
// are comparable across adapters. Faulty wraps any store to fail writes on
// demand, for testing that callers lose nothing when the store fails.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	carol = "carol@example.org"
)

// RunConformanceTests checks that the stores made by newStore keep the
// storage.Store contract. It calls newStore once per subtest and expects
// an empty store each time; it closes the store when the subtest ends
// (errors.Is(err, storage.ErrClosed) is ignored), so newStore only needs
// to clean up what Close does not, with t.Cleanup.
//
// Subtests run sequentially; call RunConformanceTests from a test that
// may itself run in parallel.
func RunConformanceTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()
	h := harness{newStore: newStore}
	tests := []struct {
		name string
		fn   func(*testing.T, harness)
	}{
		{"Roster/Empty", testRosterEmpty},
		{"Roster/PutGet", testRosterPutGet},
		{"Roster/EveryField", testRosterEveryField},
		{"Roster/Replace", testRosterReplace},
		{"Roster/Groups", testRosterGroups},
		{"Roster/Unicode", testRosterUnicode},
		{"Roster/Delete", testRosterDelete},
		{"Roster/Version", testRosterVersion},
		{"Roster/VersionPerOwner", testRosterVersionPerOwner},
		{"Roster/Isolation", testRosterIsolation},
		{"Roster/NoAliasing", testRosterNoAliasing},
		{"Offline/Empty", testOfflineEmpty},
		{"Offline/Order", testOfflineOrder},
		{"Offline/Stamps", testOfflineStamps},
		{"Offline/Data", testOfflineData},
		{"Offline/Limit", testOfflineLimit},
		{"Offline/DeleteUpTo", testOfflineDeleteUpTo},
		{"Offline/SeqNeverReused", testOfflineSeqNeverReused},
		{"Offline/Isolation", testOfflineIsolation},
		{"Offline/NoAliasing", testOfflineNoAliasing},
		{"UserData/Missing", testUserDataMissing},
		{"UserData/PutReplaceDelete", testUserDataPutReplaceDelete},
		{"UserData/Empty", testUserDataEmpty},
		{"UserData/Isolation", testUserDataIsolation},
		{"UserData/NoAliasing", testUserDataNoAliasing},
		{"Concurrent/PushOffline", testConcurrentPushOffline},
		{"Concurrent/PushOfflineLimit", testConcurrentPushOfflineLimit},
		{"Concurrent/PutRosterItem", testConcurrentPutRosterItem},
		{"Concurrent/ReadersAndWriters", testConcurrentReadersAndWriters},
		{"Closed", testClosed},
	}
	tests = append(tests, archiveTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

type harness struct {
	newStore func(t *testing.T) storage.Store
}

// open returns a fresh store that is closed when t ends.
func (h harness) open(t *testing.T) storage.Store {
	t.Helper()
	s := h.newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// ctx is what every call gets: the tests are about the data, and a store
// has no business failing a live context.
func ctx() context.Context { return context.Background() }

// sameItem compares two items field by field; nil and empty Groups are
// the same, since the contract cannot tell them apart on disk.
func sameItem(a, b storage.RosterItem) bool {
	return a.Contact == b.Contact && a.Name == b.Name &&
		slices.Equal(a.Groups, b.Groups) &&
		a.Subscription == b.Subscription && a.AskOut == b.AskOut &&
		a.PendingIn == b.PendingIn && a.PendingInStatus == b.PendingInStatus &&
		a.Approved == b.Approved && a.Hidden == b.Hidden
}

// findItem returns the item for contact in items.
func findItem(items []storage.RosterItem, contact string) (storage.RosterItem, bool) {
	for _, it := range items {
		if it.Contact == contact {
			return it, true
		}
	}
	return storage.RosterItem{}, false
}

func mustPut(t *testing.T, s storage.Store, owner string, item storage.RosterItem) uint64 {
	t.Helper()
	v, err := s.PutRosterItem(ctx(), owner, item)
	if err != nil {
		t.Fatalf("PutRosterItem(%q, %q): %v", owner, item.Contact, err)
	}
	return v
}

func mustRoster(t *testing.T, s storage.Store, owner string) ([]storage.RosterItem, uint64) {
	t.Helper()
	items, v, err := s.Roster(ctx(), owner)
	if err != nil {
		t.Fatalf("Roster(%q): %v", owner, err)
	}
	return items, v
}

func mustItem(t *testing.T, s storage.Store, owner, contact string) storage.RosterItem {
	t.Helper()
	it, err := s.RosterItem(ctx(), owner, contact)
	if err != nil {
		t.Fatalf("RosterItem(%q, %q): %v", owner, contact, err)
	}
	return it
}

// checkRoster checks that owner's roster holds exactly want, in any order
// (the contract promises none).
func checkRoster(t *testing.T, s storage.Store, owner string, want ...storage.RosterItem) {
	t.Helper()
	items, _ := mustRoster(t, s, owner)
	if len(items) != len(want) {
		t.Fatalf("Roster(%q) has %d items, want %d: %+v", owner, len(items), len(want), items)
	}
	for _, w := range want {
		got, ok := findItem(items, w.Contact)
		if !ok {
			t.Fatalf("Roster(%q) lacks %q: %+v", owner, w.Contact, items)
		}
		if !sameItem(got, w) {
			t.Errorf("Roster(%q) item %q:\n got %+v\nwant %+v", owner, w.Contact, got, w)
		}
	}
}

func testRosterEmpty(t *testing.T, h harness) {
	s := h.open(t)
	items, v := mustRoster(t, s, alice)
	if len(items) != 0 || v != 0 {
		t.Errorf("Roster of unknown owner = %d items, version %d; want 0, 0", len(items), v)
	}
	if _, err := s.RosterItem(ctx(), alice, bob); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of unknown owner: err = %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteRosterItem(ctx(), alice, bob); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteRosterItem of unknown owner: err = %v, want ErrNotFound", err)
	}
	// The failed delete must not have created a roster or a version.
	if items, v := mustRoster(t, s, alice); len(items) != 0 || v != 0 {
		t.Errorf("after failed delete: %d items, version %d; want 0, 0", len(items), v)
	}

	mustPut(t, s, alice, storage.RosterItem{Contact: bob})
	if _, err := s.RosterItem(ctx(), alice, carol); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of missing contact: err = %v, want ErrNotFound", err)
	}
}

func testRosterPutGet(t *testing.T, h harness) {
	s := h.open(t)
	item := storage.RosterItem{
		Contact:         bob,
		Name:            "Bob Builder",
		Groups:          []string{"Friends", "Work"},
		Subscription:    storage.SubBoth,
		AskOut:          true,
		PendingIn:       true,
		PendingInStatus: "let me in",
		Approved:        true,
		Hidden:          true,
	}
	v := mustPut(t, s, alice, item)
	if v == 0 {
		t.Errorf("PutRosterItem returned version 0; a change must bump it above the empty roster's 0")
	}
	if got := mustItem(t, s, alice, bob); !sameItem(got, item) {
		t.Errorf("RosterItem:\n got %+v\nwant %+v", got, item)
	}
	items, rv := mustRoster(t, s, alice)
	if rv != v {
		t.Errorf("Roster version = %d, PutRosterItem returned %d", rv, v)
	}
	if len(items) != 1 || !sameItem(items[0], item) {
		t.Errorf("Roster = %+v, want [%+v]", items, item)
	}
}

// testRosterEveryField sets one field at a time, so a store that drops or
// mixes up a field cannot hide it behind another.
func testRosterEveryField(t *testing.T, h harness) {
	s := h.open(t)
	var want []storage.RosterItem
	add := func(suffix string, it storage.RosterItem) {
		it.Contact = "c-" + suffix + "@example.net"
		want = append(want, it)
	}
	add("zero", storage.RosterItem{})
	add("name", storage.RosterItem{Name: "Only A Name"})
	add("group", storage.RosterItem{Groups: []string{"G"}})
	for _, sub := range []storage.Subscription{storage.SubNone, storage.SubTo, storage.SubFrom, storage.SubBoth} {
		add("sub-"+sub.String(), storage.RosterItem{Subscription: sub})
	}
	add("askout", storage.RosterItem{AskOut: true})
	add("pendingin", storage.RosterItem{PendingIn: true})
	add("pendingin-status", storage.RosterItem{PendingIn: true, PendingInStatus: "hi, it's me"})
	add("status-only", storage.RosterItem{PendingInStatus: "kept even without PendingIn"})
	add("approved", storage.RosterItem{Approved: true})
	add("hidden", storage.RosterItem{Hidden: true})
	add("hidden-pending", storage.RosterItem{Hidden: true, PendingIn: true, PendingInStatus: "stranger"})

	for _, it := range want {
		mustPut(t, s, alice, it)
	}
	for _, w := range want {
		if got := mustItem(t, s, alice, w.Contact); !sameItem(got, w) {
			t.Errorf("RosterItem(%q):\n got %+v\nwant %+v", w.Contact, got, w)
		}
	}
	// Hidden items are part of Roster: the caller filters them.
	checkRoster(t, s, alice, want...)
}

func testRosterReplace(t *testing.T, h harness) {
	s := h.open(t)
	mustPut(t, s, alice, storage.RosterItem{
		Contact: bob, Name: "Bob", Groups: []string{"A", "B", "C"},
		Subscription: storage.SubBoth, AskOut: true, PendingIn: true,
		PendingInStatus: "old", Approved: true, Hidden: true,
	})
	// Replacing must drop what the new item does not have, not merge.
	repl := storage.RosterItem{Contact: bob, Groups: []string{"D"}}
	mustPut(t, s, alice, repl)
	checkRoster(t, s, alice, repl)
	if got := mustItem(t, s, alice, bob); !sameItem(got, repl) {
		t.Errorf("after replace:\n got %+v\nwant %+v", got, repl)
	}
}

func testRosterGroups(t *testing.T, h harness) {
	s := h.open(t)
	many := make([]string, 50)
	for i := range many {
		many[i] = fmt.Sprintf("group %02d", 49-i) // not sorted: order is kept
	}
	cases := []struct {
		contact string
		groups  []string
	}{
		{"nil@example.net", nil},
		{"empty@example.net", []string{}},
		{"one@example.net", []string{"Friends"}},
		{"order@example.net", []string{"Zebra", "Alpha", "Middle"}},
		{"blank@example.net", []string{""}},
		{"spaces@example.net", []string{" padded ", "a,b", "semi;colon", `quo"te`}},
		{"many@example.net", many},
	}
	var want []storage.RosterItem
	for _, c := range cases {
		it := storage.RosterItem{Contact: c.contact, Groups: c.groups}
		mustPut(t, s, alice, it)
		want = append(want, it)
	}
	for _, c := range cases {
		got := mustItem(t, s, alice, c.contact)
		if !slices.Equal(got.Groups, c.groups) {
			t.Errorf("%s: Groups = %q, want %q", c.contact, got.Groups, c.groups)
		}
	}
	checkRoster(t, s, alice, want...)
}

func testRosterUnicode(t *testing.T, h harness) {
	s := h.open(t)
	owner := "jürgen@bücher.example"
	want := []storage.RosterItem{
		{Contact: "用户@例子.测试", Name: "张伟", Groups: []string{"同事", "朋友"}},
		{Contact: "пользователь@пример.рф", Name: "Дмитрий", Groups: []string{"Работа"}},
		{Contact: "emoji@example.com", Name: "Party 🎉👩‍👩‍👧", Groups: []string{"🎸 band"}, PendingInStatus: "¿qué tal? ✓"},
		{Contact: "rtl@example.com", Name: "مرحبا", Groups: []string{"עברית"}},
		{Contact: "long@example.com", Name: strings.Repeat("ß", 1000)},
	}
	for _, it := range want {
		mustPut(t, s, owner, it)
	}
	for _, w := range want {
		if got := mustItem(t, s, owner, w.Contact); !sameItem(got, w) {
			t.Errorf("RosterItem(%q):\n got %+v\nwant %+v", w.Contact, got, w)
		}
	}
	checkRoster(t, s, owner, want...)
	// Addresses compare byte for byte (storage package doc).
	if _, err := s.RosterItem(ctx(), "Jürgen@bücher.example", want[0].Contact); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("owner differing in case: err = %v, want ErrNotFound", err)
	}
}

func testRosterDelete(t *testing.T, h harness) {
	s := h.open(t)
	b := storage.RosterItem{Contact: bob, Name: "Bob"}
	c := storage.RosterItem{Contact: carol, Name: "Carol"}
	mustPut(t, s, alice, b)
	v := mustPut(t, s, alice, c)

	dv, err := s.DeleteRosterItem(ctx(), alice, bob)
	if err != nil {
		t.Fatalf("DeleteRosterItem: %v", err)
	}
	if dv <= v {
		t.Errorf("DeleteRosterItem version = %d, want > %d", dv, v)
	}
	if _, err := s.RosterItem(ctx(), alice, bob); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem after delete: err = %v, want ErrNotFound", err)
	}
	checkRoster(t, s, alice, c)

	// Deleting again is ErrNotFound and leaves the version alone.
	if _, err := s.DeleteRosterItem(ctx(), alice, bob); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteRosterItem: err = %v, want ErrNotFound", err)
	}
	if _, rv := mustRoster(t, s, alice); rv != dv {
		t.Errorf("version after failed delete = %d, want %d", rv, dv)
	}
}

func testRosterVersion(t *testing.T, h harness) {
	s := h.open(t)
	var last uint64
	check := func(op string, v uint64) {
		t.Helper()
		if v <= last {
			t.Fatalf("%s: version %d, want > %d", op, v, last)
		}
		if _, rv := mustRoster(t, s, alice); rv != v {
			t.Fatalf("%s: Roster version %d, call returned %d", op, rv, v)
		}
		last = v
	}
	check("put bob", mustPut(t, s, alice, storage.RosterItem{Contact: bob}))
	check("put carol", mustPut(t, s, alice, storage.RosterItem{Contact: carol}))
	// Writing the same item again is still a change to the client.
	check("put bob again", mustPut(t, s, alice, storage.RosterItem{Contact: bob}))
	check("update bob", mustPut(t, s, alice, storage.RosterItem{Contact: bob, Name: "B"}))
	v, err := s.DeleteRosterItem(ctx(), alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	check("delete bob", v)
	v, err = s.DeleteRosterItem(ctx(), alice, carol)
	if err != nil {
		t.Fatal(err)
	}
	check("delete carol", v)

	// An emptied roster keeps its version: going back to 0 would let a
	// client with an old cached roster believe it is current (XEP-0237).
	items, rv := mustRoster(t, s, alice)
	if len(items) != 0 || rv != last {
		t.Errorf("emptied roster: %d items, version %d; want 0 items, version %d", len(items), rv, last)
	}
	check("put after empty", mustPut(t, s, alice, storage.RosterItem{Contact: bob}))
}

func testRosterVersionPerOwner(t *testing.T, h harness) {
	s := h.open(t)
	for i := range 5 {
		mustPut(t, s, alice, storage.RosterItem{Contact: fmt.Sprintf("c%d@example.net", i)})
	}
	_, av := mustRoster(t, s, alice)
	if _, bv := mustRoster(t, s, bob); bv != 0 {
		t.Errorf("bob's version = %d after only alice changed, want 0", bv)
	}
	bv := mustPut(t, s, bob, storage.RosterItem{Contact: carol})
	if _, v := mustRoster(t, s, alice); v != av {
		t.Errorf("alice's version moved from %d to %d when bob's roster changed", av, v)
	}
	if _, err := s.DeleteRosterItem(ctx(), alice, "c0@example.net"); err != nil {
		t.Fatal(err)
	}
	if _, v := mustRoster(t, s, bob); v != bv {
		t.Errorf("bob's version moved from %d to %d when alice's roster changed", bv, v)
	}
}

func testRosterIsolation(t *testing.T, h harness) {
	s := h.open(t)
	// Owners that are prefixes of each other catch stores that build
	// composite keys without a separator.
	owners := []string{alice, alice + ".org", "a@example.com", "alice@example.co"}
	for i, o := range owners {
		mustPut(t, s, o, storage.RosterItem{Contact: carol, Name: fmt.Sprintf("carol as seen by %d", i)})
	}
	mustPut(t, s, alice, storage.RosterItem{Contact: bob})
	for i, o := range owners {
		want := []storage.RosterItem{{Contact: carol, Name: fmt.Sprintf("carol as seen by %d", i)}}
		if o == alice {
			want = append(want, storage.RosterItem{Contact: bob})
		}
		checkRoster(t, s, o, want...)
	}
	if _, err := s.DeleteRosterItem(ctx(), alice, carol); err != nil {
		t.Fatal(err)
	}
	for i, o := range owners[1:] {
		if got := mustItem(t, s, o, carol); got.Name != fmt.Sprintf("carol as seen by %d", i+1) {
			t.Errorf("%s: item changed by another owner's delete: %+v", o, got)
		}
	}
	if _, err := s.RosterItem(ctx(), owners[1], bob); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("alice's contact visible to another owner: err = %v", err)
	}
}

func testRosterNoAliasing(t *testing.T, h harness) {
	s := h.open(t)
	groups := []string{"A", "B"}
	mustPut(t, s, alice, storage.RosterItem{Contact: bob, Groups: groups})
	groups[0] = "changed by caller after Put"

	got := mustItem(t, s, alice, bob)
	if !slices.Equal(got.Groups, []string{"A", "B"}) {
		t.Fatalf("store kept the caller's slice: Groups = %q", got.Groups)
	}
	got.Groups[0] = "changed by caller after RosterItem"
	items, _ := mustRoster(t, s, alice)
	items[0].Groups[1] = "changed by caller after Roster"
	items[0].Name = "changed"

	checkRoster(t, s, alice, storage.RosterItem{Contact: bob, Groups: []string{"A", "B"}})
}

func mustPush(t *testing.T, s storage.Store, owner string, stamp time.Time, data []byte, limit int) uint64 {
	t.Helper()
	seq, err := s.PushOffline(ctx(), owner, stamp, data, limit)
	if err != nil {
		t.Fatalf("PushOffline(%q, limit %d): %v", owner, limit, err)
	}
	return seq
}

func mustOffline(t *testing.T, s storage.Store, owner string) []storage.OfflineMessage {
	t.Helper()
	msgs, err := s.OfflineMessages(ctx(), owner)
	if err != nil {
		t.Fatalf("OfflineMessages(%q): %v", owner, err)
	}
	return msgs
}

// seqs lists the Seq of each message.
func seqs(msgs []storage.OfflineMessage) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

var t0 = time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC)

func testOfflineEmpty(t *testing.T, h harness) {
	s := h.open(t)
	if msgs := mustOffline(t, s, alice); len(msgs) != 0 {
		t.Errorf("OfflineMessages of unknown owner = %+v, want none", msgs)
	}
	if err := s.DeleteOffline(ctx(), alice, 10); err != nil {
		t.Errorf("DeleteOffline of unknown owner: %v", err)
	}
	if err := s.DeleteOffline(ctx(), alice, math.MaxUint64); err != nil {
		t.Errorf("DeleteOffline(MaxUint64) of unknown owner: %v", err)
	}
}

func testOfflineOrder(t *testing.T, h harness) {
	s := h.open(t)
	var pushed []uint64
	for i := range 10 {
		// Stamps go backwards: order is push order, not time order.
		seq := mustPush(t, s, alice, t0.Add(-time.Duration(i)*time.Minute), fmt.Appendf(nil, "<message id='%d'/>", i), 0)
		// Seq 0 is never used, so a caller can use it for "nothing
		// delivered yet" (DeleteOffline(owner, 0) deletes nothing).
		if seq == 0 {
			t.Fatalf("push %d: Seq 0", i)
		}
		if len(pushed) > 0 && seq <= pushed[len(pushed)-1] {
			t.Fatalf("push %d: Seq %d, want > %d", i, seq, pushed[len(pushed)-1])
		}
		pushed = append(pushed, seq)
	}
	msgs := mustOffline(t, s, alice)
	if !slices.Equal(seqs(msgs), pushed) {
		t.Fatalf("OfflineMessages seqs = %v, want %v", seqs(msgs), pushed)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("<message id='%d'/>", i); string(m.Data) != want {
			t.Errorf("message %d: Data = %q, want %q", i, m.Data, want)
		}
		if want := t0.Add(-time.Duration(i) * time.Minute); !m.Stamp.Equal(want) {
			t.Errorf("message %d: Stamp = %v, want %v", i, m.Stamp, want)
		}
	}
}

func testOfflineStamps(t *testing.T, h harness) {
	s := h.open(t)
	stamps := []time.Time{
		t0,
		time.Now(), // carries a monotonic reading, which a store cannot keep
		t0.In(time.FixedZone("UTC+5:45", 5*3600+45*60)),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2999, 12, 31, 23, 59, 59, 1, time.UTC),
		{},
	}
	for _, st := range stamps {
		mustPush(t, s, alice, st, []byte("x"), 0)
	}
	msgs := mustOffline(t, s, alice)
	if len(msgs) != len(stamps) {
		t.Fatalf("%d messages, want %d", len(msgs), len(stamps))
	}
	for i, m := range msgs {
		// Equal, not ==: the location and monotonic reading need not
		// survive, the instant must, to the nanosecond.
		if !m.Stamp.Equal(stamps[i]) {
			t.Errorf("stamp %d = %v, want %v", i, m.Stamp, stamps[i])
		}
	}
}

func testOfflineData(t *testing.T, h harness) {
	s := h.open(t)
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	datas := [][]byte{
		nil,
		{},
		{0},
		[]byte("\x00\xff binary \x00"),
		[]byte("<message><body>héllo 世界</body></message>"),
		big,
	}
	for _, d := range datas {
		mustPush(t, s, alice, t0, d, 0)
	}
	msgs := mustOffline(t, s, alice)
	if len(msgs) != len(datas) {
		t.Fatalf("%d messages, want %d", len(msgs), len(datas))
	}
	for i, m := range msgs {
		if string(m.Data) != string(datas[i]) {
			t.Errorf("message %d: %d bytes differ from the %d pushed", i, len(m.Data), len(datas[i]))
		}
	}
}

func testOfflineLimit(t *testing.T, h harness) {
	s := h.open(t)
	const limit = 3
	var pushed []uint64
	for i := range limit {
		pushed = append(pushed, mustPush(t, s, alice, t0, []byte{byte(i)}, limit))
	}
	for range 2 {
		seq, err := s.PushOffline(ctx(), alice, t0, []byte("over"), limit)
		if !errors.Is(err, storage.ErrLimit) {
			t.Fatalf("push over limit: seq %d, err = %v, want ErrLimit", seq, err)
		}
	}
	msgs := mustOffline(t, s, alice)
	if !slices.Equal(seqs(msgs), pushed) {
		t.Fatalf("after ErrLimit: seqs %v, want %v (nothing stored)", seqs(msgs), pushed)
	}
	for i, m := range msgs {
		if len(m.Data) != 1 || m.Data[0] != byte(i) {
			t.Errorf("message %d changed by a refused push: %q", i, m.Data)
		}
	}

	// A larger limit, or none, lets more in; the limit is per call.
	mustPush(t, s, alice, t0, []byte("limit 4"), limit+1)
	mustPush(t, s, alice, t0, []byte("no limit"), 0)
	mustPush(t, s, alice, t0, []byte("negative"), -1)
	if _, err := s.PushOffline(ctx(), alice, t0, nil, limit); !errors.Is(err, storage.ErrLimit) {
		t.Errorf("queue of 6 with limit 3: err = %v, want ErrLimit", err)
	}

	// Draining frees room.
	all := mustOffline(t, s, alice)
	if err := s.DeleteOffline(ctx(), alice, all[len(all)-limit].Seq); err != nil {
		t.Fatal(err)
	}
	if got := len(mustOffline(t, s, alice)); got != limit-1 {
		t.Fatalf("after partial drain: %d messages, want %d", got, limit-1)
	}
	mustPush(t, s, alice, t0, []byte("fits again"), limit)
	if _, err := s.PushOffline(ctx(), alice, t0, nil, limit); !errors.Is(err, storage.ErrLimit) {
		t.Errorf("full again: err = %v, want ErrLimit", err)
	}

	// The limit counts only the owner's own queue.
	mustPush(t, s, bob, t0, nil, 1)
	if _, err := s.PushOffline(ctx(), bob, t0, nil, 1); !errors.Is(err, storage.ErrLimit) {
		t.Errorf("bob with limit 1: err = %v, want ErrLimit", err)
	}
}

func testOfflineDeleteUpTo(t *testing.T, h harness) {
	s := h.open(t)
	var sq []uint64
	for i := range 6 {
		sq = append(sq, mustPush(t, s, alice, t0, []byte{byte(i)}, 0))
	}
	steps := []struct {
		upTo uint64
		want []uint64
	}{
		{0, sq},               // nothing has Seq 0
		{sq[0] - 1, sq},       // below the first: nothing
		{sq[1], sq[2:]},       // inclusive
		{sq[1], sq[2:]},       // again: no-op, not an error
		{sq[0], sq[2:]},       // going back: no-op
		{sq[4] - 1, sq[4:]},   // between seqs (or equal to sq[3])
		{sq[5], nil},          // everything
		{math.MaxUint64, nil}, // empty queue
		{sq[5] + 1000, nil},   // past the end
	}
	for _, st := range steps {
		if err := s.DeleteOffline(ctx(), alice, st.upTo); err != nil {
			t.Fatalf("DeleteOffline(%d): %v", st.upTo, err)
		}
		if got := seqs(mustOffline(t, s, alice)); !slices.Equal(got, st.want) {
			t.Fatalf("after DeleteOffline(%d): seqs %v, want %v", st.upTo, got, st.want)
		}
	}

	// MaxUint64 means everything, whatever the seqs are.
	mustPush(t, s, alice, t0, nil, 0)
	mustPush(t, s, alice, t0, nil, 0)
	if err := s.DeleteOffline(ctx(), alice, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if msgs := mustOffline(t, s, alice); len(msgs) != 0 {
		t.Errorf("after DeleteOffline(MaxUint64): %d messages", len(msgs))
	}
}

// testOfflineSeqNeverReused: a session remembers the last Seq it handed
// out; if a drained queue started again at 1, its DeleteOffline would
// remove messages it never delivered.
func testOfflineSeqNeverReused(t *testing.T, h harness) {
	s := h.open(t)
	var last uint64
	for range 3 {
		last = mustPush(t, s, alice, t0, nil, 0)
	}
	if err := s.DeleteOffline(ctx(), alice, last); err != nil {
		t.Fatal(err)
	}
	if seq := mustPush(t, s, alice, t0, nil, 0); seq <= last {
		t.Errorf("Seq after draining = %d, want > %d", seq, last)
	}
	// A refused push must not reset the sequence either.
	if _, err := s.PushOffline(ctx(), alice, t0, nil, 1); !errors.Is(err, storage.ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit", err)
	}
	msgs := mustOffline(t, s, alice)
	if seq := mustPush(t, s, alice, t0, nil, 0); seq <= msgs[len(msgs)-1].Seq {
		t.Errorf("Seq after ErrLimit = %d, want > %d", seq, msgs[len(msgs)-1].Seq)
	}
}

func testOfflineIsolation(t *testing.T, h harness) {
	s := h.open(t)
	owners := []string{alice, alice + ".org", bob}
	for i := range 4 {
		for _, o := range owners {
			mustPush(t, s, o, t0, []byte(fmt.Sprintf("%s/%d", o, i)), 0)
		}
	}
	for _, o := range owners {
		msgs := mustOffline(t, s, o)
		if len(msgs) != 4 {
			t.Fatalf("%s: %d messages, want 4", o, len(msgs))
		}
		for i, m := range msgs {
			if want := fmt.Sprintf("%s/%d", o, i); string(m.Data) != want {
				t.Errorf("%s message %d = %q, want %q", o, i, m.Data, want)
			}
		}
	}
	if err := s.DeleteOffline(ctx(), alice, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	for _, o := range owners[1:] {
		if n := len(mustOffline(t, s, o)); n != 4 {
			t.Errorf("%s: %d messages after alice's delete, want 4", o, n)
		}
	}
	// Limits count per owner: alice is empty, so limit 1 fits.
	mustPush(t, s, alice, t0, nil, 1)
}

func testOfflineNoAliasing(t *testing.T, h harness) {
	s := h.open(t)
	small, large := []byte("original"), bytes.Repeat([]byte("L"), 64<<10)
	data := [][]byte{slices.Clone(small), slices.Clone(large)}
	for _, d := range data {
		mustPush(t, s, alice, t0, d, 0)
		d[0] = 'X'
	}
	check := func(what string, msgs []storage.OfflineMessage) {
		t.Helper()
		if len(msgs) != 2 || !bytes.Equal(msgs[0].Data, small) || !bytes.Equal(msgs[1].Data, large) {
			t.Fatalf("%s: messages differ from what was pushed", what)
		}
	}
	msgs := mustOffline(t, s, alice)
	check("store kept the caller's slices", msgs)
	kept := mustOffline(t, s, alice)
	for i := range msgs {
		msgs[i].Data[0] = 'M'
		msgs[i].Seq = 999
	}
	check("store returned its own memory", mustOffline(t, s, alice))
	if again := mustOffline(t, s, alice); again[0].Seq == 999 {
		t.Errorf("store returned its own memory: Seq 999")
	}
	// Messages handed out stay valid while the store changes.
	churn(t, s)
	check("messages changed after later writes", kept)
}

func testUserDataMissing(t *testing.T, h harness) {
	s := h.open(t)
	if v, err := s.UserData(ctx(), alice, "vcard"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UserData of unknown owner = %q, %v; want ErrNotFound", v, err)
	}
	if err := s.DeleteUserData(ctx(), alice, "vcard"); err != nil {
		t.Errorf("DeleteUserData of unknown owner: %v", err)
	}
	if err := s.PutUserData(ctx(), alice, "prefs", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserData(ctx(), alice, "vcard"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("UserData of missing key: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUserData(ctx(), alice, "vcard"); err != nil {
		t.Errorf("DeleteUserData of missing key: %v", err)
	}
}

func mustUserData(t *testing.T, s storage.Store, owner, key string) []byte {
	t.Helper()
	v, err := s.UserData(ctx(), owner, key)
	if err != nil {
		t.Fatalf("UserData(%q, %q): %v", owner, key, err)
	}
	return v
}

func testUserDataPutReplaceDelete(t *testing.T, h harness) {
	s := h.open(t)
	long := strings.Repeat("<vCard>…</vCard>", 4000)
	for _, v := range []string{"first value", long, "short"} {
		if err := s.PutUserData(ctx(), alice, "vcard", []byte(v)); err != nil {
			t.Fatal(err)
		}
		// A shorter value must not keep the tail of the longer one.
		if got := mustUserData(t, s, alice, "vcard"); string(got) != v {
			t.Fatalf("UserData = %d bytes, want the %d just put", len(got), len(v))
		}
	}
	if err := s.DeleteUserData(ctx(), alice, "vcard"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserData(ctx(), alice, "vcard"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUserData(ctx(), alice, "vcard"); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := s.PutUserData(ctx(), alice, "vcard", []byte("back")); err != nil {
		t.Fatal(err)
	}
	if got := mustUserData(t, s, alice, "vcard"); string(got) != "back" {
		t.Errorf("put after delete: %q", got)
	}
}

// testUserDataEmpty: an empty value is a value (an empty private XML
// storage, say), not a missing one.
func testUserDataEmpty(t *testing.T, h harness) {
	s := h.open(t)
	for _, v := range [][]byte{nil, {}} {
		if err := s.PutUserData(ctx(), alice, "private", v); err != nil {
			t.Fatalf("PutUserData(%#v): %v", v, err)
		}
		if got := mustUserData(t, s, alice, "private"); len(got) != 0 {
			t.Errorf("UserData after putting %#v = %q", v, got)
		}
	}
}

func testUserDataIsolation(t *testing.T, h harness) {
	s := h.open(t)
	owners := []string{alice, alice + ".org", "bob@example.com"}
	keys := []string{"vcard", "vcard2", "v", "private:storage:bookmarks"}
	val := func(o, k string) string { return o + "|" + k }
	for _, o := range owners {
		for _, k := range keys {
			if err := s.PutUserData(ctx(), o, k, []byte(val(o, k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteUserData(ctx(), alice, "vcard"); err != nil {
		t.Fatal(err)
	}
	for _, o := range owners {
		for _, k := range keys {
			got, err := s.UserData(ctx(), o, k)
			if o == alice && k == "vcard" {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("deleted value: %q, %v", got, err)
				}
				continue
			}
			if err != nil || string(got) != val(o, k) {
				t.Errorf("UserData(%q, %q) = %q, %v; want %q", o, k, got, err, val(o, k))
			}
		}
	}
}

func testUserDataNoAliasing(t *testing.T, h harness) {
	s := h.open(t)
	// Small and large: a store on a memory-mapped file may copy small
	// values but hand out large ones straight from the mapping.
	for _, size := range []int{8, 64 << 10} {
		orig := bytes.Repeat([]byte("o"), size)
		v := slices.Clone(orig)
		key := fmt.Sprint("k", size)
		if err := s.PutUserData(ctx(), alice, key, v); err != nil {
			t.Fatal(err)
		}
		v[0] = 'X'
		got := mustUserData(t, s, alice, key)
		if !bytes.Equal(got, orig) {
			t.Fatalf("%d bytes: store kept the caller's slice", size)
		}
		kept := mustUserData(t, s, alice, key)
		got[0] = 'M'
		if again := mustUserData(t, s, alice, key); !bytes.Equal(again, orig) {
			t.Errorf("%d bytes: store returned its own memory", size)
		}
		// A value handed out must stay valid while the store changes
		// (and a file store grows and remaps).
		churn(t, s)
		if !bytes.Equal(kept, orig) {
			t.Errorf("%d bytes: value changed after later writes", size)
		}
	}
}

// churn writes a few MiB under another owner, enough to make a file store
// grow its file, then deletes it.
func churn(t *testing.T, s storage.Store) {
	t.Helper()
	big := make([]byte, 256<<10)
	for i := range 16 {
		if err := s.PutUserData(ctx(), "churn@example.net", fmt.Sprint(i), big); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 16 {
		if err := s.DeleteUserData(ctx(), "churn@example.net", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// run starts n goroutines running fn(i) and waits for them; fn reports
// with t.Errorf, which is safe from any goroutine.
func run(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

func testConcurrentPushOffline(t *testing.T, h harness) {
	s := h.open(t)
	const workers, each = 16, 25
	got := make([][]uint64, workers)
	run(workers, func(w int) {
		for i := range each {
			seq, err := s.PushOffline(ctx(), alice, t0, fmt.Appendf(nil, "%d/%d", w, i), 0)
			if err != nil {
				t.Errorf("worker %d push %d: %v", w, i, err)
				return
			}
			got[w] = append(got[w], seq)
		}
	})
	if t.Failed() {
		return
	}
	msgs := mustOffline(t, s, alice)
	if len(msgs) != workers*each {
		t.Fatalf("%d messages stored, want %d", len(msgs), workers*each)
	}
	bySeq := make(map[uint64]string, len(msgs))
	for i, m := range msgs {
		if i > 0 && m.Seq <= msgs[i-1].Seq {
			t.Fatalf("messages out of Seq order at %d: %d after %d", i, m.Seq, msgs[i-1].Seq)
		}
		bySeq[m.Seq] = string(m.Data)
	}
	for w, ss := range got {
		for i, seq := range ss {
			if i > 0 && seq <= ss[i-1] {
				t.Errorf("worker %d: Seq %d after its own %d", w, seq, ss[i-1])
			}
			if want := fmt.Sprintf("%d/%d", w, i); bySeq[seq] != want {
				t.Errorf("Seq %d returned for %q holds %q", seq, want, bySeq[seq])
			}
		}
	}
}

// testConcurrentPushOfflineLimit: the limit check and the append are one
// step, so racing pushers cannot overfill the queue.
func testConcurrentPushOfflineLimit(t *testing.T, h harness) {
	s := h.open(t)
	const workers, each, limit = 16, 10, 37
	var (
		mu       sync.Mutex
		accepted int
	)
	run(workers, func(w int) {
		for range each {
			_, err := s.PushOffline(ctx(), alice, t0, []byte("m"), limit)
			switch {
			case err == nil:
				mu.Lock()
				accepted++
				mu.Unlock()
			case !errors.Is(err, storage.ErrLimit):
				t.Errorf("worker %d: %v", w, err)
				return
			}
		}
	})
	if accepted != limit {
		t.Errorf("%d pushes accepted, want exactly %d", accepted, limit)
	}
	if n := len(mustOffline(t, s, alice)); n != limit {
		t.Errorf("%d messages stored, want %d", n, limit)
	}
}

func testConcurrentPutRosterItem(t *testing.T, h harness) {
	s := h.open(t)
	const workers, each = 8, 10
	vers := make([][]uint64, workers)
	run(workers, func(w int) {
		for i := range each {
			v, err := s.PutRosterItem(ctx(), alice, storage.RosterItem{
				Contact: fmt.Sprintf("c%d-%d@example.net", w, i),
				Name:    fmt.Sprint(w, i),
			})
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
				return
			}
			vers[w] = append(vers[w], v)
		}
	})
	if t.Failed() {
		return
	}
	// Every change bumps the version, so no two changes share one.
	seen := make(map[uint64]bool)
	var highest uint64
	for _, vs := range vers {
		for _, v := range vs {
			if seen[v] {
				t.Errorf("version %d returned twice", v)
			}
			seen[v] = true
			highest = max(highest, v)
		}
	}
	items, v := mustRoster(t, s, alice)
	if len(items) != workers*each {
		t.Errorf("%d items, want %d", len(items), workers*each)
	}
	if v != highest {
		t.Errorf("Roster version %d, want the highest returned, %d", v, highest)
	}
}

// testConcurrentReadersAndWriters gives the race detector something to
// look at and checks that readers never see a torn state.
func testConcurrentReadersAndWriters(t *testing.T, h harness) {
	s := h.open(t)
	const rounds = 30
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range rounds {
			c := fmt.Sprintf("c%d@example.net", i%5)
			if _, err := s.PutRosterItem(ctx(), alice, storage.RosterItem{Contact: c, Groups: []string{"g", c}}); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.PushOffline(ctx(), alice, t0, []byte(c), 0); err != nil {
				t.Error(err)
				return
			}
			if err := s.PutUserData(ctx(), alice, "k", []byte(c)); err != nil {
				t.Error(err)
				return
			}
			if i%7 == 6 {
				if err := s.DeleteOffline(ctx(), alice, uint64(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			var lastVer, lastSeq uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				items, v, err := s.Roster(ctx(), alice)
				if err != nil {
					t.Error(err)
					return
				}
				if v < lastVer {
					t.Errorf("version went back from %d to %d", lastVer, v)
				}
				lastVer = v
				for _, it := range items {
					if len(it.Groups) != 2 || it.Groups[1] != it.Contact {
						t.Errorf("torn item %+v", it)
					}
				}
				msgs, err := s.OfflineMessages(ctx(), alice)
				if err != nil {
					t.Error(err)
					return
				}
				for i, m := range msgs {
					if i > 0 && m.Seq <= msgs[i-1].Seq {
						t.Errorf("out of order: %v", seqs(msgs))
					}
				}
				if len(msgs) > 0 {
					last := msgs[len(msgs)-1].Seq
					if last < lastSeq {
						t.Errorf("newest Seq went back from %d to %d", lastSeq, last)
					}
					lastSeq = last
				}
				if _, err := s.UserData(ctx(), alice, "k"); err != nil && !errors.Is(err, storage.ErrNotFound) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

func testClosed(t *testing.T, h harness) {
	s := h.open(t)
	mustPut(t, s, alice, storage.RosterItem{Contact: bob})
	mustPush(t, s, alice, t0, nil, 0)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]func() error{
		"Roster":     func() error { _, _, err := s.Roster(ctx(), alice); return err },
		"RosterItem": func() error { _, err := s.RosterItem(ctx(), alice, bob); return err },
		"PutRosterItem": func() error {
			_, err := s.PutRosterItem(ctx(), alice, storage.RosterItem{Contact: carol})
			return err
		},
		"DeleteRosterItem": func() error { _, err := s.DeleteRosterItem(ctx(), alice, bob); return err },
		"PushOffline":      func() error { _, err := s.PushOffline(ctx(), alice, t0, nil, 0); return err },
		"OfflineMessages":  func() error { _, err := s.OfflineMessages(ctx(), alice); return err },
		"DeleteOffline":    func() error { return s.DeleteOffline(ctx(), alice, 1) },
		"UserData":         func() error { _, err := s.UserData(ctx(), alice, "k"); return err },
		"PutUserData":      func() error { return s.PutUserData(ctx(), alice, "k", nil) },
		"DeleteUserData":   func() error { return s.DeleteUserData(ctx(), alice, "k") },
		"AppendMessages": func() error {
			return s.AppendMessages(ctx(), []storage.ArchivedMessage{amsg(alice, 1, bob, "hi")})
		},
		"QueryMessages":      func() error { _, _, err := s.QueryMessages(ctx(), alice, storage.ArchiveQuery{}); return err },
		"SetMessageState":    func() error { return s.SetMessageState(ctx(), alice, bob, "c1", 1) },
		"DeleteConversation": func() error { return s.DeleteConversation(ctx(), alice, bob) },
		"Close":              s.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}
