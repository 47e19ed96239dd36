package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
)

var codecMessage = storage.ArchivedMessage{
	Owner:    "alice@example.com",
	ID:       "0a1b2c3d4e5f000012345678",
	With:     "bob@example.com",
	Stamp:    time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	Outgoing: true,
	ClientID: "7d1e0c4a-origin",
	Body:     "Shall we have lunch today?",
	Data:     []byte("<message to='bob@example.com' type='chat'><body>Shall we have lunch today?</body></message>"),
	State:    2,
}

func TestMessageRoundTrip(t *testing.T) {
	msgs := []storage.ArchivedMessage{
		codecMessage,
		{Owner: "a@x", ID: "1", With: "b@x"},
		{Owner: "a@x", ID: "2", With: strings.Repeat("w", 300), Body: strings.Repeat("é", 200), Data: make([]byte, 70000), State: 255},
	}
	for _, m := range msgs {
		b := encodeMessage(m)
		if len(b) != cap(b) {
			t.Errorf("%s: encoded %d bytes into a buffer of %d", m.ID, len(b), cap(b))
		}
		got, err := decodeMessage(m.Owner, []byte(m.ID), b)
		if err != nil {
			t.Fatalf("%s: %v", m.ID, err)
		}
		if got.Owner != m.Owner || got.ID != m.ID || got.With != m.With || !got.Stamp.Equal(m.Stamp) ||
			got.Outgoing != m.Outgoing || got.ClientID != m.ClientID || got.Body != m.Body ||
			!bytes.Equal(got.Data, m.Data) || got.State != m.State {
			t.Errorf("round trip:\n got %+.100v\nwant %+.100v", got, m)
		}
	}
}

func TestDecodeMessageRejectsCorruption(t *testing.T) {
	good := encodeMessage(codecMessage)
	bad := map[string][]byte{
		"empty":         nil,
		"short header":  good[:messageHeader-1],
		"future format": append([]byte{2}, good[1:]...),
		"unknown flag":  append([]byte{good[0], 0x80}, good[2:]...),
		"nanoseconds":   append(append(slices.Clone(good[:11]), 0xff, 0xff, 0xff, 0xff), good[15:]...),
		"truncated":     good[:messageHeader+5],
		"huge length":   append(slices.Clone(good[:messageHeader]), 0xff, 0xff, 0xff, 0xff, 0x0f),
	}
	for name, b := range bad {
		if _, err := decodeMessage("a@x", []byte("1"), b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

// FuzzDecodeMessage: whatever is on disk, decoding returns an error or a
// message that encodes back to the same bytes; it never panics.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(codecMessage))
	f.Add(encodeMessage(storage.ArchivedMessage{}))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'b', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage("a@x", []byte("id"), b)
		if err != nil {
			return
		}
		if again := encodeMessage(m); !bytes.Equal(again, b) && !nonCanonical(b) {
			t.Fatalf("decode then encode changed %x into %x", b, again)
		}
	})
}

func TestBlockRoundTrip(t *testing.T) {
	sets := [][]string{
		{"a"},
		{"0a1b2c3d4e5f000012345678", "0a1b2c3d4e60000087654321", "0a1b2c3d4e60000187654321"},
		{"1", "10", "1a", "2", "b", "ba", strings.Repeat("z", 200), "A", "0", "00", "0f", "0g", "f", "fff", "ffg"},
	}
	slices.Sort(sets[2])
	var bl block
	for _, ids := range sets {
		enc := appendBlock(nil, ids)
		if err := bl.decode(enc); err != nil {
			t.Fatalf("%q: %v", ids, err)
		}
		if got := bl.strings(); !slices.Equal(got, ids) {
			t.Errorf("round trip %q gave %q", ids, got)
		}
		for i, id := range ids {
			if j, ok := bl.search([]byte(id)); !ok || j != i {
				t.Errorf("search(%q) = %d, %v; want %d, true", id, j, ok, i)
			}
		}
		if _, ok := bl.search([]byte(ids[0] + "\x00")); ok && !slices.Contains(ids, ids[0]+"\x00") {
			t.Errorf("search found an absent ID")
		}
	}
	// Shared prefixes are what keep blocks small.
	ids := make([]string, blockSize)
	for i := range ids {
		ids[i] = fmt.Sprintf("%012x%04x%08x", 0x2a000000000+i*997_000, 0, uint32(i)*2654435761)
	}
	if n := len(appendBlock(nil, ids)); n > blockSize*12 {
		t.Errorf("a block of %d Parley IDs takes %d bytes, want at most 12 per ID", blockSize, n)
	}
}

func TestDecodeBlockRejectsCorruption(t *testing.T) {
	good := appendBlock(nil, []string{"abc", "abd", "b"})
	bad := map[string][]byte{
		"empty":          nil,
		"format":         append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(slices.Clone(good), 0),
		"huge count":     {1, 0xff, 0xff, 0xff, 0x0f, 0, 1, 'a'},
		"not increasing": appendBlockRaw([][2]string{{"", "y"}, {"", "x"}}),
		"repeated":       appendBlockRaw([][2]string{{"", "x"}, {"1", ""}}),
		"shared too far": appendBlockRaw([][2]string{{"", "x"}, {"2", "y"}}),
		"not shortest":   appendBlockRaw([][2]string{{"", "xy"}, {"0", "xz"}}),
		"empty first":    appendBlockRaw([][2]string{{"", ""}}),
		"hex not packed": appendBlockRaw([][2]string{{"", "0a"}}),
		"packed short":   {1, 1, 0, 4<<1 | 1, 0xab},
		"odd padding":    {1, 1, 0, 3<<1 | 1, 0xab, 0xcd},
		"hex decreasing": {1, 2, 0, 2<<1 | 1, 0xab, 0, 2<<1 | 1, 0xaa},
	}
	var bl block
	for name, b := range bad {
		if err := bl.decode(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

// appendBlockRaw writes entries as given, unpacked: {shared as a
// decimal, rest}.
func appendBlockRaw(entries [][2]string) []byte {
	buf := []byte{formatPostings, byte(len(entries))}
	for _, e := range entries {
		var n int
		fmt.Sscan(e[0], &n)
		buf = append(buf, byte(n), byte(len(e[1])<<1))
		buf = append(buf, e[1]...)
	}
	return buf
}

func FuzzDecodeBlock(f *testing.F) {
	f.Add(appendBlock(nil, []string{"0a1b2c3d4e5f000012345678", "0a1b2c3d4e60000087654321"}))
	f.Add(appendBlock(nil, []string{"a", "ab", "b"}))
	f.Add(appendBlock(nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var bl block
		if err := bl.decode(b); err != nil {
			return
		}
		ids := bl.strings()
		if !slices.IsSorted(ids) {
			t.Fatalf("decoded IDs out of order: %q", ids)
		}
		if again := appendBlock(nil, ids); !bytes.Equal(again, b) && !nonCanonical(b) {
			t.Fatalf("decode then encode changed %x into %x", b, again)
		}
	})
}

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want string // terms; '+' before a joined one
	}{
		{"Lunch? lunchtime!", "lunch lunchtime"},
		{"  un-related:stuff/here  ", "un related stuff here"},
		{"room 42, floor 7", "room 42 floor 7"},
		{"ΟΔΟΣ οδος", "οδοσ οδοσ"}, // final sigma folds with sigma
		{"Straße STRASSE", "straße strasse"},
		{"ＬＵＮＣＨ ｌｕｎｃｈ", "lunch lunch"}, // full-width
		{"naïve café", "naïve café"},
		{"cafe\u0301 x", "cafe\u0301 x"}, // a combining mark stays in the word
		{"我们去吃午饭吧", "我 +们 +去 +吃 +午 +饭 +吧"},
		{"Tシャツを買った", "t +シ +ャ +ツ +を +買 +っ +た"},
		{"コーヒー", "コ +ー +ヒ +ー"},
		{"학교에서 만나요", "학 +교 +에 +서 만 +나 +요"},
		{"lunch午饭 ok", "lunch +午 +饭 ok"},
		{"", ""},
		{"?!", ""},
	}
	for _, c := range cases {
		var parts []string
		for _, tok := range storage.Tokenize(c.in) {
			if tok.Joined {
				parts = append(parts, "+"+tok.Term)
			} else {
				parts = append(parts, tok.Term)
			}
		}
		if got := strings.Join(parts, " "); got != c.want {
			t.Errorf("tokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := strings.Repeat("é", 100)
	if terms := indexTerms(long + " a a"); len(terms) != 2 || terms[0] != "a" || len(terms[1]) != maxTermLen || !strings.HasPrefix(long, terms[1]) {
		t.Errorf("indexTerms of a long word = %q", terms)
	}
}

// TestASCIITerms holds the ASCII fast path of the indexer to the general
// one (storage.Tokenize, then indexTerm) on random ASCII bodies.
func TestASCIITerms(t *testing.T) {
	general := func(body string) []string {
		var terms []string
		for _, tok := range storage.Tokenize(body) {
			terms = append(terms, indexTerm(tok.Term))
		}
		slices.Sort(terms)
		return slices.Compact(terms)
	}
	alphabet := "aZz09 .,-_'!?\t\n@xyzABC" + "\x00\x7f"
	r := rand.New(rand.NewPCG(3, 4))
	bodies := []string{"", " ", "Hello, World! hello", strings.Repeat("Ab1", 40) + " x " + strings.Repeat("q", 64), "xb 17 12345 1732261234567890123"}
	for range 20000 {
		b := make([]byte, r.IntN(90))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(10) == 0 { // long words, cut at maxTermLen
			b = append(b, strings.Repeat("w", 50+r.IntN(30))...)
		}
		bodies = append(bodies, string(b))
	}
	for _, body := range bodies {
		got, ok := appendASCIITerms(nil, body)
		if !ok {
			t.Fatalf("appendASCIITerms(%q) refused an ASCII body", body)
		}
		if want := general(body); !slices.Equal(got, want) {
			t.Fatalf("terms of %q = %q, want %q", body, got, want)
		}
	}
	if _, ok := appendASCIITerms(nil, "café"); ok {
		t.Error("appendASCIITerms took a body that is not ASCII")
	}
	if got, want := indexTerms("Café au LAIT, ＡＢＣ"), general("Café au LAIT, ＡＢＣ"); !slices.Equal(got, want) {
		t.Errorf("indexTerms = %q, want %q", got, want)
	}
}

// TestPostingBlocks adds and removes IDs in random orders and batch sizes
// and checks the blocks after each step: IDs in order and each in the
// one block whose key range holds it, no block over blockSize, none
// empty, and together exactly the IDs added and not removed.
func TestPostingBlocks(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "p.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	want := make(map[string][]string) // term -> IDs
	terms := []string{"a", "ab", "b", "common"}
	id := func() string { return fmt.Sprintf("%012x%04x", rng.IntN(1<<40), rng.IntN(1<<16)) }
	for step := range 300 {
		term := terms[rng.IntN(len(terms))]
		err := db.Update(func(tx *bolt.Tx) error {
			tb, err := tx.CreateBucketIfNotExists([]byte("t"))
			if err != nil {
				return err
			}
			if rng.IntN(4) == 0 && len(want[term]) > 0 {
				var gone []string
				for _, x := range want[term] {
					if rng.IntN(3) == 0 {
						gone = append(gone, x)
					}
				}
				want[term] = slices.DeleteFunc(want[term], func(x string) bool { return slices.Contains(gone, x) })
				return removePostings(tb, term, gone)
			}
			n := 1 + rng.IntN(3)
			if rng.IntN(10) == 0 {
				n = 300
			}
			var add []string
			for range n {
				x := id()
				if rng.IntN(2) == 0 { // mostly newer than everything, as in life
					x = "f" + x
				}
				if !slices.Contains(want[term], x) && !slices.Contains(add, x) {
					add = append(add, x)
				}
			}
			slices.Sort(add)
			want[term] = append(want[term], add...)
			slices.Sort(want[term])
			return addPostings(tb, term, add, new(block))
		})
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		checkBlocks(t, db, want)
		if t.Failed() {
			t.Fatalf("after step %d", step)
		}
	}
}

func checkBlocks(t *testing.T, db *bolt.DB, want map[string][]string) {
	t.Helper()
	db.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket([]byte("t"))
		for term, ids := range want {
			p := appendString(nil, term)
			var got []string
			var bl block
			c := tb.Cursor()
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				if err := bl.decode(v); err != nil {
					t.Fatalf("%s: %v", term, err)
				}
				if bl.len() == 0 || bl.len() > blockSize {
					t.Errorf("%s: block of %d", term, bl.len())
				}
				key := string(k[len(p):])
				if bl.len() > 0 && string(bl.id(0)) < key {
					t.Errorf("%s: block %q holds %q, below its key", term, key, bl.id(0))
				}
				if len(got) > 0 && got[len(got)-1] >= key {
					t.Errorf("%s: block %q follows one holding %q", term, key, got[len(got)-1])
				}
				got = append(got, bl.strings()...)
			}
			if len(got) != len(ids) || !slices.Equal(got, ids) {
				t.Errorf("%s: blocks hold %d IDs (sorted %v), want %d", term, len(got), slices.IsSorted(got), len(ids))
			}
			if n, _ := postingCount(tb.Cursor(), p); n != len(ids) {
				t.Errorf("%s: postingCount %d, want %d", term, n, len(ids))
			}
		}
		return nil
	})
}
