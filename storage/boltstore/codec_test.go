package boltstore

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

var codecItem = storage.RosterItem{
	Contact:         "contact042@example.com",
	Name:            "Contact Number 42",
	Groups:          []string{"Colleagues", "Friends"},
	Subscription:    storage.SubBoth,
	PendingIn:       true,
	PendingInStatus: "hello",
	Hidden:          true,
}

func TestRosterItemRoundTrip(t *testing.T) {
	items := []storage.RosterItem{
		{Contact: "a@x"},
		codecItem,
		{Contact: "b@x", Subscription: storage.SubTo, AskOut: true, Approved: true, Groups: []string{""}},
		{Contact: "c@x", Name: string(make([]byte, 300)), Groups: make([]string, 200)}, // multi-byte varints
	}
	for _, it := range items {
		b := encodeRosterItem(it)
		if len(b) != rosterItemSize(it) {
			t.Errorf("%s: encoded %d bytes, size said %d", it.Contact, len(b), rosterItemSize(it))
		}
		got, err := decodeRosterItem([]byte(it.Contact), b)
		if err != nil {
			t.Fatalf("%s: %v", it.Contact, err)
		}
		if got.Contact != it.Contact || got.Name != it.Name || !slices.Equal(got.Groups, it.Groups) ||
			got.Subscription != it.Subscription || got.AskOut != it.AskOut || got.PendingIn != it.PendingIn ||
			got.PendingInStatus != it.PendingInStatus || got.Approved != it.Approved || got.Hidden != it.Hidden {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, it)
		}
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	good := encodeRosterItem(codecItem)
	bad := map[string][]byte{
		"empty":          nil,
		"short":          good[:2],
		"future format":  append([]byte{2}, good[1:]...),
		"unknown flag":   append([]byte{good[0], good[1], 0x80}, good[3:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(slices.Clone(good), 0),
		"huge count":     {1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range bad {
		if _, err := decodeRosterItem([]byte("x"), b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
	msg := encodeOffline(time.Now(), []byte("x"))
	for name, b := range map[string][]byte{
		"short":       msg[:offlineHeader-1],
		"format":      append([]byte{9}, msg[1:]...),
		"nanoseconds": append(append(slices.Clone(msg[:9]), 0xff, 0xff, 0xff, 0xff), msg[13:]...),
	} {
		if _, err := decodeOffline(seqKey(1), b); !errors.Is(err, errCorrupt) {
			t.Errorf("offline %s: err = %v, want errCorrupt", name, err)
		}
	}
}

// FuzzDecodeRosterItem: whatever is on disk, decoding returns an error
// or an item that encodes back to the same bytes; it never panics.
func FuzzDecodeRosterItem(f *testing.F) {
	f.Add(encodeRosterItem(codecItem))
	f.Add(encodeRosterItem(storage.RosterItem{}))
	f.Add([]byte{1, 0, 0, 0, 0, 3, 0, 1, 'a', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := decodeRosterItem([]byte("c@x"), b)
		if err != nil {
			return
		}
		if again := encodeRosterItem(it); string(again) != string(b) && !nonCanonical(b) {
			t.Fatalf("decode then encode changed %x into %x", b, again)
		}
	})
}

// nonCanonical reports whether b holds a varint with redundant bytes,
// which decodes fine but which encodeRosterItem never writes.
func nonCanonical(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i]&0x80 != 0 && b[i+1] == 0 {
			return true
		}
	}
	return false
}

func FuzzDecodeOffline(f *testing.F) {
	f.Add(encodeOffline(time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), []byte("<message/>")))
	f.Add(encodeOffline(time.Time{}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeOffline(seqKey(7), b)
		if err != nil {
			return
		}
		if again := encodeOffline(m.Stamp, m.Data); string(again) != string(b) {
			t.Fatalf("decode then encode changed %x into %x", b, again)
		}
	})
}

// BenchmarkCodec is the measurement behind the hand-rolled format: a
// 100-item Roster decodes every item, so decode speed is login speed.
func BenchmarkCodec(b *testing.B) {
	b.Run("Binary/Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeRosterItem(codecItem)
		}
		b.ReportMetric(float64(len(encodeRosterItem(codecItem))), "bytes")
	})
	b.Run("Binary/Decode", func(b *testing.B) {
		b.ReportAllocs()
		enc, key := encodeRosterItem(codecItem), []byte(codecItem.Contact)
		for b.Loop() {
			if _, err := decodeRosterItem(key, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	// JSON as boltstore would have to write it: without the contact,
	// which is the key.
	type jsonItem struct {
		Name            string   `json:"n,omitempty"`
		Groups          []string `json:"g,omitempty"`
		Subscription    uint8    `json:"s,omitempty"`
		AskOut          bool     `json:"ao,omitempty"`
		PendingIn       bool     `json:"pi,omitempty"`
		PendingInStatus string   `json:"ps,omitempty"`
		Approved        bool     `json:"ap,omitempty"`
		Hidden          bool     `json:"h,omitempty"`
	}
	ji := jsonItem{codecItem.Name, codecItem.Groups, uint8(codecItem.Subscription), codecItem.AskOut,
		codecItem.PendingIn, codecItem.PendingInStatus, codecItem.Approved, codecItem.Hidden}
	b.Run("JSON/Encode", func(b *testing.B) {
		b.ReportAllocs()
		var enc []byte
		for b.Loop() {
			enc, _ = json.Marshal(ji)
		}
		b.ReportMetric(float64(len(enc)), "bytes")
	})
	b.Run("JSON/Decode", func(b *testing.B) {
		b.ReportAllocs()
		enc, _ := json.Marshal(ji)
		for b.Loop() {
			var out jsonItem
			if err := json.Unmarshal(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
