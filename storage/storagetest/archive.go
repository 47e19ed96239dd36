package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

// The storage.Archive contract. Messages are made with amsg, whose IDs
// (aid) look like Parley's and sort by their number.

var archiveTests = []struct {
	name string
	fn   func(*testing.T, harness)
}{
	{"Archive/Empty", testArchiveEmpty},
	{"Archive/RoundTrip", testArchiveRoundTrip},
	{"Archive/Order", testArchiveOrder},
	{"Archive/PagingForward", testArchivePagingForward},
	{"Archive/PagingBackward", testArchivePagingBackward},
	{"Archive/AfterAndBefore", testArchiveAfterAndBefore},
	{"Archive/UnknownCursor", testArchiveUnknownCursor},
	{"Archive/With", testArchiveWith},
	{"Archive/StartEnd", testArchiveStartEnd},
	{"Archive/MaxDefault", testArchiveMaxDefault},
	{"Archive/Text", testArchiveText},
	{"Archive/TextUnicode", testArchiveTextUnicode},
	{"Archive/TextPaging", testArchiveTextPaging},
	{"Archive/TextMany", testArchiveTextMany},
	{"Archive/BothCopies", testArchiveBothCopies},
	{"Archive/Isolation", testArchiveIsolation},
	{"Archive/DuplicateID", testArchiveDuplicateID},
	{"Archive/BatchAtomic", testArchiveBatchAtomic},
	{"Archive/SetMessageState", testArchiveSetMessageState},
	{"Archive/DeleteConversation", testArchiveDeleteConversation},
	{"Archive/NoAliasing", testArchiveNoAliasing},
	{"Archive/Concurrent", testArchiveConcurrent},
}

// aid is the i-th archive ID: shaped like Parley's (hex microseconds,
// counter, random part), sorting in the order of i.
func aid(i int) string {
	return fmt.Sprintf("%012x%04x%08x", 0x2a000000000+i*1500, i%7, uint32(i)*2654435761)
}

// amsg is message i of owner's archive, with with, stamped i minutes after
// t0.
func amsg(owner string, i int, with, body string) storage.ArchivedMessage {
	return storage.ArchivedMessage{
		Owner:    owner,
		ID:       aid(i),
		With:     with,
		Stamp:    t0.Add(time.Duration(i) * time.Minute),
		Outgoing: i%2 == 0,
		ClientID: fmt.Sprint("c", i),
		Body:     body,
		Data:     fmt.Appendf(nil, "<message id='c%d'><body>%s</body></message>", i, body),
	}
}

func mustAppend(t *testing.T, s storage.Store, msgs ...storage.ArchivedMessage) {
	t.Helper()
	if err := s.AppendMessages(ctx(), msgs); err != nil {
		t.Fatalf("AppendMessages(%d messages): %v", len(msgs), err)
	}
}

func mustQuery(t *testing.T, s storage.Store, owner string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool) {
	t.Helper()
	msgs, complete, err := s.QueryMessages(ctx(), owner, q)
	if err != nil {
		t.Fatalf("QueryMessages(%q, %+v): %v", owner, q, err)
	}
	return msgs, complete
}

// checkQuery runs q and checks the IDs and the complete flag.
func checkQuery(t *testing.T, s storage.Store, owner string, q storage.ArchiveQuery, wantIDs []string, wantComplete bool) []storage.ArchivedMessage {
	t.Helper()
	msgs, complete := mustQuery(t, s, owner, q)
	if got := msgIDs(msgs); !slices.Equal(got, wantIDs) || complete != wantComplete {
		t.Errorf("QueryMessages(%q, %+v)\n got %s, complete %v\nwant %s, complete %v",
			owner, q, idNames(got), complete, idNames(wantIDs), wantComplete)
	}
	return msgs
}

func msgIDs(msgs []storage.ArchivedMessage) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// idNames shows IDs made by aid as their numbers, for readable failures.
func idNames(ids []string) string {
	names := make(map[string]int)
	for i := range 2000 {
		names[aid(i)] = i
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		if n, ok := names[id]; ok {
			fmt.Fprint(&b, n)
		} else {
			fmt.Fprintf(&b, "%q", id)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// aids returns aid(i) for each i.
func aids(is ...int) []string {
	out := make([]string, len(is))
	for k, i := range is {
		out[k] = aid(i)
	}
	return out
}

// span returns aid(from) to aid(to-1).
func span(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, aid(i))
	}
	return out
}

// sameMessage compares every field; stamps by Equal, nil and empty Data
// alike.
func sameMessage(a, b storage.ArchivedMessage) bool {
	return a.Owner == b.Owner && a.ID == b.ID && a.With == b.With && a.Stamp.Equal(b.Stamp) &&
		a.Outgoing == b.Outgoing && a.ClientID == b.ClientID && a.Body == b.Body &&
		bytes.Equal(a.Data, b.Data) && a.State == b.State
}

// appendRange appends messages from to to-1 of alice's archive with bob.
func appendRange(t *testing.T, s storage.Store, from, to int) {
	t.Helper()
	var msgs []storage.ArchivedMessage
	for i := from; i < to; i++ {
		msgs = append(msgs, amsg(alice, i, bob, fmt.Sprint("message ", i)))
	}
	mustAppend(t, s, msgs...)
}

func testArchiveEmpty(t *testing.T, h harness) {
	s := h.open(t)
	checkQuery(t, s, alice, storage.ArchiveQuery{}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, With: bob, Text: "hello"}, nil, true)
	for _, q := range []storage.ArchiveQuery{{AfterID: aid(1)}, {BeforeID: aid(1)}, {BeforeID: aid(1), Last: true}} {
		if _, _, err := s.QueryMessages(ctx(), alice, q); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("QueryMessages(%+v) of an empty archive: err = %v, want ErrNotFound", q, err)
		}
	}
	if err := s.SetMessageState(ctx(), alice, bob, "c1", 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetMessageState in an empty archive: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteConversation(ctx(), alice, bob); err != nil {
		t.Errorf("DeleteConversation in an empty archive: %v", err)
	}
	if err := s.AppendMessages(ctx(), nil); err != nil {
		t.Errorf("AppendMessages(nil): %v", err)
	}
	checkQuery(t, s, alice, storage.ArchiveQuery{}, nil, true)
}

func testArchiveRoundTrip(t *testing.T, h harness) {
	s := h.open(t)
	berlin := time.FixedZone("CEST", 2*3600)
	want := []storage.ArchivedMessage{
		{Owner: alice, ID: aid(0), With: bob, Stamp: t0, Outgoing: true, ClientID: "origin-1",
			Body: "Hello Bob", Data: []byte("<message to='bob@example.com'><body>Hello Bob</body></message>")},
		{Owner: alice, ID: aid(1), With: bob, Stamp: time.Date(2025, 7, 1, 12, 0, 0, 1, berlin),
			ClientID: "", Body: "", Data: nil, State: 3},
		{Owner: alice, ID: aid(2), With: "用户@例子.测试", Stamp: t0.Add(time.Hour), ClientID: "ид-3",
			Body: "Grüße 🎉 — 你好", Data: bytes.Repeat([]byte{0, 0xff, '<'}, 30000), State: 255},
		{Owner: alice, ID: aid(3), With: carol, Stamp: time.Time{}, Outgoing: true, ClientID: strings.Repeat("x", 300),
			Body: strings.Repeat("long body ", 2000)},
	}
	mustAppend(t, s, want...)
	msgs, complete := mustQuery(t, s, alice, storage.ArchiveQuery{})
	if !complete || len(msgs) != len(want) {
		t.Fatalf("got %d messages, complete %v; want %d, true", len(msgs), complete, len(want))
	}
	for i, w := range want {
		if !sameMessage(msgs[i], w) {
			t.Errorf("message %d:\n got %+.200v\nwant %+.200v", i, msgs[i], w)
		}
		if msgs[i].Stamp.Location() != time.UTC {
			t.Errorf("message %d: Stamp in %v, want UTC (what a store on disk gives back)", i, msgs[i].Stamp.Location())
		}
	}
}

func testArchiveOrder(t *testing.T, h harness) {
	s := h.open(t)
	// Out of order within a call and across calls; IDs of other shapes
	// sort byte-wise ("10" before "2").
	mustAppend(t, s, amsg(alice, 5, bob, "five"), amsg(alice, 1, bob, "one"), amsg(alice, 3, carol, "three"))
	mustAppend(t, s, amsg(alice, 4, bob, "four"), amsg(alice, 0, carol, "zero"), amsg(alice, 2, bob, "two"))
	odd := []string{"2", "10", "1", "z", "Z", "1a"}
	for _, id := range odd {
		m := amsg(alice, 0, bob, "odd")
		m.ID = id
		mustAppend(t, s, m)
	}
	want := append(span(0, 6), "1", "10", "1a", "2", "Z", "z")
	slices.Sort(want)
	checkQuery(t, s, alice, storage.ArchiveQuery{}, want, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true}, want, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, AfterID: "1"}, []string{"10", "1a", "2", "Z", "z"}, true)
}

func testArchivePagingForward(t *testing.T, h harness) {
	s := h.open(t)
	appendRange(t, s, 0, 10)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 3}, aids(0, 1, 2), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 3, AfterID: aid(2)}, aids(3, 4, 5), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 3, AfterID: aid(5)}, aids(6, 7, 8), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 3, AfterID: aid(8)}, aids(9), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 3, AfterID: aid(9)}, nil, true)
	// A page that ends exactly at the last message is complete.
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 5, AfterID: aid(4)}, span(5, 10), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 10}, span(0, 10), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 9}, span(0, 9), false)

	// Walk it all one at a time.
	var got []string
	after := ""
	for range 20 {
		msgs, complete := mustQuery(t, s, alice, storage.ArchiveQuery{Max: 1, AfterID: after})
		got = append(got, msgIDs(msgs)...)
		if complete {
			break
		}
		after = msgs[0].ID
	}
	if !slices.Equal(got, span(0, 10)) {
		t.Errorf("paging one by one gave %s", idNames(got))
	}
}

func testArchivePagingBackward(t *testing.T, h harness) {
	s := h.open(t)
	appendRange(t, s, 0, 10)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3}, aids(7, 8, 9), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3, BeforeID: aid(7)}, aids(4, 5, 6), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3, BeforeID: aid(4)}, aids(1, 2, 3), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3, BeforeID: aid(1)}, aids(0), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3, BeforeID: aid(0)}, nil, true)
	// A page that starts exactly at the first message is complete.
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 5, BeforeID: aid(5)}, span(0, 5), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 10}, span(0, 10), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 9}, span(1, 10), false)
	// BeforeID without Last: the first page before it.
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 3, BeforeID: aid(7)}, aids(0, 1, 2), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 7, BeforeID: aid(7)}, span(0, 7), true)
	// AfterID with Last: the newest page after it.
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3, AfterID: aid(2)}, aids(7, 8, 9), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 7, AfterID: aid(2)}, span(3, 10), true)

	var got []string
	before := ""
	for range 20 {
		msgs, complete := mustQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 4, BeforeID: before})
		got = append(msgIDs(msgs), got...)
		if complete {
			break
		}
		before = msgs[0].ID
	}
	if !slices.Equal(got, span(0, 10)) {
		t.Errorf("paging back by 4 gave %s", idNames(got))
	}
}

func testArchiveAfterAndBefore(t *testing.T, h harness) {
	s := h.open(t)
	appendRange(t, s, 0, 10)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(2), BeforeID: aid(8)}, span(3, 8), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(2), BeforeID: aid(8), Max: 2}, aids(3, 4), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(2), BeforeID: aid(8), Max: 5}, span(3, 8), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(2), BeforeID: aid(8), Max: 2, Last: true}, aids(6, 7), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(2), BeforeID: aid(8), Max: 5, Last: true}, span(3, 8), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(4), BeforeID: aid(5)}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(5), BeforeID: aid(5)}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(6), BeforeID: aid(3), Last: true}, nil, true)
}

func testArchiveUnknownCursor(t *testing.T, h harness) {
	s := h.open(t)
	appendRange(t, s, 0, 5)
	mustAppend(t, s, amsg(bob, 7, alice, "bob's own"), amsg(alice, 9, carol, "with carol"))
	for name, id := range map[string]string{
		"never seen":       "nope",
		"between two IDs":  aid(0) + "0",
		"in bob's archive": aid(7),
		"a space":          " ",
	} {
		for _, q := range []storage.ArchiveQuery{
			{AfterID: id}, {BeforeID: id}, {BeforeID: id, Last: true},
			{AfterID: id, With: bob}, {AfterID: aid(1), BeforeID: id}, {AfterID: id, BeforeID: aid(3)},
		} {
			_, _, err := s.QueryMessages(ctx(), alice, q)
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: QueryMessages(%+v): err = %v, want ErrNotFound", name, q, err)
			}
		}
	}
	// An ID of another conversation is in the archive: a valid bound.
	checkQuery(t, s, alice, storage.ArchiveQuery{With: carol, BeforeID: aid(3)}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, BeforeID: aid(9), AfterID: aid(2)}, aids(3, 4), true)
}

func testArchiveWith(t *testing.T, h harness) {
	s := h.open(t)
	// bob, carol and a JID that starts with bob's, interleaved.
	bobOrg := bob + ".org"
	withs := []string{bob, carol, bobOrg}
	var msgs []storage.ArchivedMessage
	byWith := make(map[string][]string)
	for i := range 15 {
		w := withs[i%3]
		msgs = append(msgs, amsg(alice, i, w, "hi"))
		byWith[w] = append(byWith[w], aid(i))
	}
	mustAppend(t, s, msgs...)
	for _, w := range withs {
		checkQuery(t, s, alice, storage.ArchiveQuery{With: w}, byWith[w], true)
		checkQuery(t, s, alice, storage.ArchiveQuery{With: w, Last: true, Max: 2}, byWith[w][3:], false)
		checkQuery(t, s, alice, storage.ArchiveQuery{With: w, Max: 2}, byWith[w][:2], false)
	}
	// Cursors from other conversations bound by ID.
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, AfterID: aid(4)}, aids(6, 9, 12), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, AfterID: aid(4), Max: 2}, aids(6, 9), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, BeforeID: aid(8), Last: true, Max: 2}, aids(3, 6), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, BeforeID: aid(8), Last: true, Max: 3}, aids(0, 3, 6), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: "nobody@example.com"}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: "bob@example"}, nil, true)
	// Addresses compare byte for byte.
	checkQuery(t, s, alice, storage.ArchiveQuery{With: strings.ToUpper(bob)}, nil, true)
	for _, m := range mustQueryAll(t, s, alice, storage.ArchiveQuery{With: bobOrg}) {
		if m.With != bobOrg {
			t.Errorf("With %q in a query for %q", m.With, bobOrg)
		}
	}
}

func mustQueryAll(t *testing.T, s storage.Store, owner string, q storage.ArchiveQuery) []storage.ArchivedMessage {
	t.Helper()
	q.Max = 1 << 20
	msgs, _ := mustQuery(t, s, owner, q)
	return msgs
}

func testArchiveStartEnd(t *testing.T, h harness) {
	s := h.open(t)
	appendRange(t, s, 0, 10) // message i at t0 + i minutes
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(3), End: at(6)}, span(3, 7), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(3)}, span(3, 10), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{End: at(3)}, span(0, 4), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(4), End: at(4)}, aids(4), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(4).Add(time.Nanosecond), End: at(5).Add(-time.Nanosecond)}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(6), End: at(3)}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(3), End: at(8), Last: true, Max: 2}, aids(7, 8), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(3), End: at(8), Max: 2, AfterID: aid(5)}, aids(6, 7), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(3), End: at(8), Max: 3, AfterID: aid(5)}, aids(6, 7, 8), true)
	// In another zone, and with a monotonic clock reading, a bound is the
	// same instant.
	tokyo := time.FixedZone("JST", 9*3600)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(8).In(tokyo)}, aids(8, 9), true)
	now := time.Now()
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: now.Add(-now.Sub(at(8)))}, aids(8, 9), true)

	// Start and End filter on Stamp itself, even where it does not grow
	// with the ID (a clock stepped back).
	late := amsg(alice, 10, bob, "stamped early")
	late.Stamp = at(-60)
	mustAppend(t, s, late)
	checkQuery(t, s, alice, storage.ArchiveQuery{End: at(1)}, aids(0, 1, 10), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{End: at(1), With: bob, Last: true, Max: 2}, aids(1, 10), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Start: at(5), With: bob, Last: true, Max: 5}, span(5, 10), true)
}

func testArchiveMaxDefault(t *testing.T, h harness) {
	s := h.open(t)
	appendRange(t, s, 0, 150)
	checkQuery(t, s, alice, storage.ArchiveQuery{}, span(0, 100), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true}, span(50, 150), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{AfterID: aid(49)}, span(50, 150), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob, Max: 0}, span(0, 100), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "message"}, span(0, 100), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Max: 150}, span(0, 150), true)
}

// textCorpus is alice's archive for the Text tests, with bob unless
// noted.
var textCorpus = []string{
	0:  "Lunch?",
	1:  "lunchtime is over",
	2:  "Shall we have LUNCH today",
	3:  "today is fine, lunch... maybe",
	4:  "Привет, как дела?",
	5:  "ÉCOLE fermée demain",
	6:  "我们去吃午饭吧",
	7:  "午 饭",
	8:  "Tシャツを買った",
	9:  "room 42, floor 7",
	10: "naïve café",
	11: "학교에서 만나요",
	12: "Ωμέγα",
	13: "",
	14: "un-related:stuff/here",
	// Words longer than a store may like as a key; they still count
	// whole.
	15: strings.Repeat("abc", 30) + "x",
	16: strings.Repeat("abc", 30) + "xy",
}

func textArchive(t *testing.T, s storage.Store) {
	t.Helper()
	var msgs []storage.ArchivedMessage
	for i, body := range textCorpus {
		msgs = append(msgs, amsg(alice, i, bob, body))
	}
	mustAppend(t, s, msgs...)
}

func testArchiveText(t *testing.T, h harness) {
	s := h.open(t)
	textArchive(t, s)
	// Bob's archive holds lunch too; alice's searches must not see it.
	mustAppend(t, s, amsg(bob, 100, alice, "lunch lunch today"))
	cases := []struct {
		text string
		want []int
	}{
		// Case-insensitive, whole words: "lunch" finds "Lunch?" but not
		// "lunchtime".
		{"lunch", []int{0, 2, 3}},
		{"LUNCH", []int{0, 2, 3}},
		{"Lunch?", []int{0, 2, 3}},
		{"lunchtime", []int{1}},
		{"lunc", nil},
		{"unch", nil},
		// Every word, in any order, whatever lies between them.
		{"lunch today", []int{2, 3}},
		{"today lunch", []int{2, 3}},
		{"  lunch,  TODAY! ", []int{2, 3}},
		{"lunch today fine", []int{3}},
		{"lunch lunch", []int{0, 2, 3}},
		{"lunch nowhere", nil},
		{"is", []int{1, 3}},
		{"42", []int{9}},
		{"4", nil},
		{"room 7", []int{9}},
		{"related", []int{14}},
		{"stuff here", []int{14}},
		{"nowhere", nil},
		{strings.Repeat("abc", 30) + "x", []int{15}},
		{strings.Repeat("ABC", 30) + "XY", []int{16}},
		{strings.Repeat("abc", 30), nil},
	}
	for _, c := range cases {
		checkQuery(t, s, alice, storage.ArchiveQuery{Text: c.text}, aids(c.want...), true)
	}
}

func testArchiveTextUnicode(t *testing.T, h harness) {
	s := h.open(t)
	textArchive(t, s)
	cases := []struct {
		text string
		want []int
	}{
		{"привет", []int{4}},
		{"ДЕЛА", []int{4}},
		{"как", []int{4}},
		{"école", []int{5}},
		{"FERMÉE demain", []int{5}},
		{"ecole", nil}, // accents count
		{"NAÏVE", []int{10}},
		{"café", []int{10}},
		{"ΩΜΈΓΑ", []int{12}},
		// Han, Kana and Hangul have no spaces between words: a query word
		// of them matches where its characters stand in a row.
		{"午饭", []int{6}},
		{"饭", []int{6, 7}},
		{"午", []int{6, 7}},
		{"饭午", nil},
		{"吃午饭", []int{6}},
		{"我们 午饭", []int{6}},
		{"午饭 我们", []int{6}},
		{"シャツ", []int{8}},
		{"tシャツ", []int{8}},
		{"Tシャツ 買った", []int{8}},
		{"シャツT", nil},
		{"학교", []int{11}},
		{"만나요", []int{11}},
		{"학교 만나요", []int{11}},
	}
	for _, c := range cases {
		checkQuery(t, s, alice, storage.ArchiveQuery{Text: c.text}, aids(c.want...), true)
	}
}

// testArchiveTextPaging: Text combines with the other fields, and pages
// like any other selection.
func testArchiveTextPaging(t *testing.T, h harness) {
	s := h.open(t)
	var msgs []storage.ArchivedMessage
	for i := range 30 {
		w, body := bob, "plain words"
		if i%3 == 0 {
			body = "the plan for Friday"
		}
		if i%2 == 1 {
			w = carol
		}
		msgs = append(msgs, amsg(alice, i, w, body))
	}
	mustAppend(t, s, msgs...)
	plan := []int{0, 3, 6, 9, 12, 15, 18, 21, 24, 27}
	planBob := []int{0, 6, 12, 18, 24}
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan"}, aids(plan...), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Max: 4}, aids(plan[:4]...), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Max: 4, AfterID: aid(9)}, aids(12, 15, 18, 21), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Max: 4, AfterID: aid(10)}, aids(12, 15, 18, 21), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Max: 4, AfterID: aid(18)}, aids(21, 24, 27), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Last: true, Max: 4}, aids(18, 21, 24, 27), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Last: true, Max: 4, BeforeID: aid(13)}, aids(3, 6, 9, 12), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", Last: true, Max: 4, BeforeID: aid(11)}, aids(0, 3, 6, 9), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", AfterID: aid(3), BeforeID: aid(15)}, aids(6, 9, 12), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan friday", With: bob}, aids(planBob...), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", With: bob, Last: true, Max: 2}, aids(18, 24), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plan", With: bob, AfterID: aid(7), Max: 2}, aids(12, 18), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{
		Text: "FRIDAY", With: bob,
		Start: t0.Add(5 * time.Minute), End: t0.Add(20 * time.Minute),
	}, aids(6, 12, 18), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "plain plan"}, nil, true)
}

// testArchiveTextMany: many messages share a word, some a rarer one, and
// they arrive out of order, so a store that indexes in blocks must insert
// into and split the middle of them.
func testArchiveTextMany(t *testing.T, h harness) {
	s := h.open(t)
	const n = 700
	body := func(i int) string {
		b := "common words " + fmt.Sprint("w", i%10)
		if i%50 == 0 {
			b += " rare"
		}
		return b
	}
	var evens, odds []storage.ArchivedMessage
	for i := range n {
		w := bob
		if i%4 == 3 {
			w = carol
		}
		m := amsg(alice, i, w, body(i))
		if i%2 == 0 {
			evens = append(evens, m)
		} else {
			odds = append(odds, m)
		}
	}
	mustAppend(t, s, evens...)
	for i := 0; i < len(odds); i += 25 {
		mustAppend(t, s, odds[i:min(i+25, len(odds))]...)
	}

	var got []string
	after := ""
	for range n {
		msgs, complete := mustQuery(t, s, alice, storage.ArchiveQuery{Text: "common", Max: 100, AfterID: after})
		got = append(got, msgIDs(msgs)...)
		if complete {
			break
		}
		after = msgs[len(msgs)-1].ID
	}
	if !slices.Equal(got, span(0, n)) {
		t.Errorf("paging through \"common\": %d IDs, want %d in order", len(got), n)
	}
	var rare, rareW3 []int
	for i := 0; i < n; i += 50 {
		rare = append(rare, i)
		if i%10 == 0 {
			rareW3 = append(rareW3, i)
		}
	}
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "rare common", Max: n}, aids(rare...), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "common rare w0", Max: n}, aids(rareW3...), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "w7", Last: true, Max: 3}, aids(677, 687, 697), false)

	// Deleting carol's quarter leaves the index right for the rest.
	if err := s.DeleteConversation(ctx(), alice, carol); err != nil {
		t.Fatal(err)
	}
	var bobs []int
	for i := range n {
		if i%4 != 3 {
			bobs = append(bobs, i)
		}
	}
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "words", Max: n}, aids(bobs...), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "w3", Max: n, With: carol}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "rare", Max: n}, aids(rare...), true) // all are bob's
}

// testArchiveBothCopies: the usual append, one message in both
// participants' archives in one call.
func testArchiveBothCopies(t *testing.T, h harness) {
	s := h.open(t)
	out := amsg(alice, 1, bob, "see you at noon")
	in := out
	in.Owner, in.With, in.Outgoing = bob, alice, false
	in.ID = aid(2)
	mustAppend(t, s, out, in)
	a := checkQuery(t, s, alice, storage.ArchiveQuery{}, aids(1), true)
	b := checkQuery(t, s, bob, storage.ArchiveQuery{}, aids(2), true)
	if len(a) == 1 && !sameMessage(a[0], out) {
		t.Errorf("alice's copy = %+v", a[0])
	}
	if len(b) == 1 && !sameMessage(b[0], in) {
		t.Errorf("bob's copy = %+v", b[0])
	}
}

func testArchiveIsolation(t *testing.T, h harness) {
	s := h.open(t)
	// The same ID in two archives is two messages.
	owners := []string{alice, alice + ".org", bob}
	for k, o := range owners {
		mustAppend(t, s, amsg(o, 1, carol, "shared "+fmt.Sprint("own", k)), amsg(o, 2, carol, "second"))
	}
	for k, o := range owners {
		msgs := checkQuery(t, s, o, storage.ArchiveQuery{}, aids(1, 2), true)
		if len(msgs) == 2 && (msgs[0].Owner != o || msgs[0].Body != "shared own"+fmt.Sprint(k)) {
			t.Errorf("%s: first message %+v", o, msgs[0])
		}
		checkQuery(t, s, o, storage.ArchiveQuery{Text: "own" + fmt.Sprint(k)}, aids(1), true)
		checkQuery(t, s, o, storage.ArchiveQuery{Text: "own" + fmt.Sprint((k+1)%3)}, nil, true)
	}
	if err := s.SetMessageState(ctx(), alice, carol, "c1", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConversation(ctx(), bob, carol); err != nil {
		t.Fatal(err)
	}
	checkQuery(t, s, bob, storage.ArchiveQuery{}, nil, true)
	for _, o := range owners[:2] {
		msgs := checkQuery(t, s, o, storage.ArchiveQuery{}, aids(1, 2), true)
		if want := map[string]uint8{alice: 2}[o]; len(msgs) == 2 && msgs[0].State != want {
			t.Errorf("%s: State %d, want %d", o, msgs[0].State, want)
		}
	}
}

func testArchiveDuplicateID(t *testing.T, h harness) {
	s := h.open(t)
	mustAppend(t, s, amsg(alice, 1, bob, "original"))
	dup := amsg(alice, 1, carol, "impostor")
	err := s.AppendMessages(ctx(), []storage.ArchivedMessage{dup})
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("appending an ID again: err = %v, want an error", err)
	}
	msgs := checkQuery(t, s, alice, storage.ArchiveQuery{}, aids(1), true)
	if len(msgs) == 1 && (msgs[0].Body != "original" || msgs[0].With != bob) {
		t.Errorf("the duplicate replaced the original: %+v", msgs[0])
	}
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "impostor"}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: carol}, nil, true)
	// Twice in one call.
	if err := s.AppendMessages(ctx(), []storage.ArchivedMessage{amsg(alice, 2, bob, "x"), amsg(alice, 2, bob, "y")}); err == nil {
		t.Error("one ID twice in one call: no error")
	}
	checkQuery(t, s, alice, storage.ArchiveQuery{}, aids(1), true)
}

// testArchiveBatchAtomic: a call with one bad message stores none of its
// messages, in any owner's archive or any index, and leaves no trace that
// would trip a retry.
func testArchiveBatchAtomic(t *testing.T, h harness) {
	s := h.open(t)
	mustAppend(t, s, amsg(bob, 5, alice, "already there"))
	batch := []storage.ArchivedMessage{
		amsg(alice, 1, bob, "first doomed"),
		amsg(alice, 2, carol, "second doomed"),
		amsg(bob, 6, alice, "third doomed"),
		amsg(bob, 5, alice, "the duplicate"),
		amsg(carol, 7, alice, "fourth doomed"),
	}
	if err := s.AppendMessages(ctx(), batch); err == nil {
		t.Fatal("batch with a duplicate: no error")
	}
	for _, o := range []string{alice, carol} {
		checkQuery(t, s, o, storage.ArchiveQuery{}, nil, true)
		checkQuery(t, s, o, storage.ArchiveQuery{Text: "doomed"}, nil, true)
		checkQuery(t, s, o, storage.ArchiveQuery{With: bob}, nil, true)
		checkQuery(t, s, o, storage.ArchiveQuery{With: alice}, nil, true)
	}
	checkQuery(t, s, bob, storage.ArchiveQuery{}, aids(5), true)
	checkQuery(t, s, bob, storage.ArchiveQuery{Text: "doomed"}, nil, true)
	if err := s.SetMessageState(ctx(), alice, bob, "c1", 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetMessageState on a message of the failed batch: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.QueryMessages(ctx(), alice, storage.ArchiveQuery{AfterID: aid(1)}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AfterID of a message of the failed batch: err = %v, want ErrNotFound", err)
	}

	// Without the duplicate, the retry lands whole.
	batch = slices.Delete(batch, 3, 4)
	mustAppend(t, s, batch...)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "doomed"}, aids(1, 2), true)
	checkQuery(t, s, bob, storage.ArchiveQuery{Text: "doomed"}, aids(6), true)
	checkQuery(t, s, carol, storage.ArchiveQuery{Text: "doomed"}, aids(7), true)
	if err := s.SetMessageState(ctx(), alice, bob, "c1", 1); err != nil {
		t.Errorf("SetMessageState after the retry: %v", err)
	}
}

func testArchiveSetMessageState(t *testing.T, h harness) {
	s := h.open(t)
	m := amsg(alice, 1, bob, "did you get this?")
	m.ClientID = "abc-1"
	other := amsg(alice, 2, carol, "same client id, other conversation")
	other.ClientID = "abc-1"
	mine := amsg(bob, 3, alice, "bob's copy")
	mine.ClientID = "abc-1"
	mustAppend(t, s, m, other, mine)

	state := func(owner string, id int) uint8 {
		t.Helper()
		for _, x := range mustQueryAll(t, s, owner, storage.ArchiveQuery{}) {
			if x.ID == aid(id) {
				return x.State
			}
		}
		t.Fatalf("%s has no message %d", owner, id)
		return 0
	}
	steps := []struct{ set, want uint8 }{{2, 2}, {1, 2}, {2, 2}, {0, 2}, {3, 3}, {255, 255}, {254, 255}}
	for _, st := range steps {
		if err := s.SetMessageState(ctx(), alice, bob, "abc-1", st.set); err != nil {
			t.Fatalf("SetMessageState(%d): %v", st.set, err)
		}
		if got := state(alice, 1); got != st.want {
			t.Errorf("after SetMessageState(%d): State %d, want %d", st.set, got, st.want)
		}
	}
	if got := state(alice, 2); got != 0 {
		t.Errorf("carol's message with the same client id: State %d, want 0", got)
	}
	if got := state(bob, 3); got != 0 {
		t.Errorf("bob's message with the same client id: State %d, want 0", got)
	}
	// Nothing else changed.
	got := mustQueryAll(t, s, alice, storage.ArchiveQuery{With: bob})
	m.State = 255
	if len(got) != 1 || !sameMessage(got[0], m) {
		t.Errorf("after SetMessageState: %+v, want %+v", got, m)
	}
	for _, c := range []struct{ owner, with, clientID string }{
		{alice, bob, "abc-2"},
		{alice, bob, "abc"},
		{alice, "bob@example", "abc-1"},
		{alice, alice, "abc-1"},
		{carol, bob, "abc-1"},
	} {
		if err := s.SetMessageState(ctx(), c.owner, c.with, c.clientID, 1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetMessageState(%q, %q, %q): err = %v, want ErrNotFound", c.owner, c.with, c.clientID, err)
		}
	}
}

func testArchiveDeleteConversation(t *testing.T, h harness) {
	s := h.open(t)
	bobOrg := bob + ".org"
	var msgs []storage.ArchivedMessage
	for i := range 12 {
		w := []string{bob, carol, bobOrg}[i%3]
		body := "hello from " + strings.Split(w, "@")[0]
		if w == bob {
			body += " secret"
		}
		msgs = append(msgs, amsg(alice, i, w, body))
		// Bob's copies of his conversation with alice.
		if w == bob {
			msgs = append(msgs, amsg(bob, i, alice, body))
		}
	}
	mustAppend(t, s, msgs...)

	if err := s.DeleteConversation(ctx(), alice, bob); err != nil {
		t.Fatal(err)
	}
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bob}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{}, aids(1, 2, 4, 5, 7, 8, 10, 11), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Last: true, Max: 3}, aids(8, 10, 11), false)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "secret"}, nil, true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "hello"}, aids(1, 2, 4, 5, 7, 8, 10, 11), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{With: bobOrg}, aids(2, 5, 8, 11), true)
	if err := s.SetMessageState(ctx(), alice, bob, "c0", 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetMessageState on a deleted message: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.QueryMessages(ctx(), alice, storage.ArchiveQuery{AfterID: aid(3)}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("AfterID of a deleted message: err = %v, want ErrNotFound", err)
	}
	// Bob's copy stays.
	checkQuery(t, s, bob, storage.ArchiveQuery{}, aids(0, 3, 6, 9), true)
	checkQuery(t, s, bob, storage.ArchiveQuery{Text: "secret", With: alice}, aids(0, 3, 6, 9), true)
	if err := s.SetMessageState(ctx(), bob, alice, "c3", 1); err != nil {
		t.Errorf("SetMessageState on bob's copy: %v", err)
	}

	// Deleting again, or a conversation never had, is not an error.
	if err := s.DeleteConversation(ctx(), alice, bob); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if err := s.DeleteConversation(ctx(), alice, "nobody@example.com"); err != nil {
		t.Errorf("delete of a conversation never had: %v", err)
	}
	// Nothing of the deleted messages is left to clash with: the same
	// IDs can be archived again, and are found once.
	var again []storage.ArchivedMessage
	for i := 0; i < 12; i += 3 {
		again = append(again, amsg(alice, i, bob, "secret again"))
	}
	mustAppend(t, s, again...)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "secret"}, aids(0, 3, 6, 9), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{Text: "from"}, aids(1, 2, 4, 5, 7, 8, 10, 11), true)
	checkQuery(t, s, alice, storage.ArchiveQuery{}, span(0, 12), true)
}

func testArchiveNoAliasing(t *testing.T, h harness) {
	s := h.open(t)
	small, large := []byte("<message>original</message>"), bytes.Repeat([]byte("L"), 64<<10)
	in := []storage.ArchivedMessage{amsg(alice, 1, bob, "one"), amsg(alice, 2, bob, "two")}
	in[0].Data, in[1].Data = slices.Clone(small), slices.Clone(large)
	mustAppend(t, s, in...)
	for i := range in {
		in[i].Data[0] = 'X'
	}
	check := func(what string, msgs []storage.ArchivedMessage) {
		t.Helper()
		if len(msgs) != 2 || !bytes.Equal(msgs[0].Data, small) || !bytes.Equal(msgs[1].Data, large) {
			t.Fatalf("%s: messages differ from what was appended", what)
		}
	}
	msgs := mustQueryAll(t, s, alice, storage.ArchiveQuery{})
	check("store kept the caller's slices", msgs)
	// Through the text index too, which a store may read differently.
	kept := append(mustQueryAll(t, s, alice, storage.ArchiveQuery{Text: "one"}),
		mustQueryAll(t, s, alice, storage.ArchiveQuery{Text: "two"})...)
	for i := range msgs {
		msgs[i].Data[0] = 'M'
		msgs[i].Body = "changed"
	}
	check("store returned its own memory", mustQueryAll(t, s, alice, storage.ArchiveQuery{}))
	if again := mustQueryAll(t, s, alice, storage.ArchiveQuery{}); again[0].Body != "one" {
		t.Errorf("store returned its own memory: Body %q", again[0].Body)
	}
	// Messages handed out stay valid while the store changes.
	churn(t, s)
	if err := s.SetMessageState(ctx(), alice, bob, "c1", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConversation(ctx(), alice, bob); err != nil {
		t.Fatal(err)
	}
	check("messages changed after later writes", kept)
	if kept[0].State != 0 {
		t.Errorf("a message handed out changed State to %d", kept[0].State)
	}
}

// testArchiveConcurrent: appends from many goroutines, to shared and
// separate archives, all land, in ID order, while readers page.
func testArchiveConcurrent(t *testing.T, h harness) {
	s := h.open(t)
	const workers, each = 16, 20
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				msgs, _, err := s.QueryMessages(ctx(), alice, storage.ArchiveQuery{Last: true, Max: 75, Text: "hello"})
				if err != nil {
					t.Error(err)
					return
				}
				for i := 1; i < len(msgs); i++ {
					if msgs[i].ID <= msgs[i-1].ID {
						t.Errorf("out of order: %q after %q", msgs[i].ID, msgs[i-1].ID)
						return
					}
				}
			}
		})
	}
	run(workers, func(w int) {
		for i := range each {
			n := w*each + i
			m := amsg(alice, n, fmt.Sprintf("c%d@example.net", w%4), "hello "+fmt.Sprint("w", w))
			theirs := m
			theirs.Owner, theirs.With = m.With, alice
			if err := s.AppendMessages(ctx(), []storage.ArchivedMessage{m, theirs}); err != nil {
				t.Errorf("worker %d: %v", w, err)
				return
			}
		}
	})
	close(done)
	readers.Wait()
	if t.Failed() {
		return
	}
	all := mustQueryAll(t, s, alice, storage.ArchiveQuery{})
	want := span(0, workers*each)
	if got := msgIDs(all); !slices.Equal(got, want) {
		t.Errorf("%d messages after concurrent appends, want %d in ID order", len(got), len(want))
	}
	for w := range 4 {
		c := fmt.Sprintf("c%d@example.net", w)
		if n := len(mustQueryAll(t, s, c, storage.ArchiveQuery{With: alice})); n != workers*each/4 {
			t.Errorf("%s: %d messages, want %d", c, n, workers*each/4)
		}
		if n := len(mustQueryAll(t, s, alice, storage.ArchiveQuery{With: c, Text: "hello"})); n != workers*each/4 {
			t.Errorf("alice with %s: %d messages found, want %d", c, n, workers*each/4)
		}
	}
}
