package boltstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parleyhq/parley/storage"
)

// On-disk value formats. Each value starts with a format byte so a later
// release can change the layout and still read old files. The contact of
// a roster item and the Seq of an offline message are the keys, so they
// are not repeated in the value.
//
// Roster item, format 1:
//
//	format   byte (1)
//	sub      byte (storage.Subscription)
//	flags    byte (flagAskOut | flagPendingIn | flagApproved | flagHidden)
//	name     uvarint length, bytes
//	status   uvarint length, bytes (PendingInStatus)
//	groups   uvarint count, then per group: uvarint length, bytes
//
// Offline message, format 1:
//
//	format   byte (1)
//	seconds  int64, big endian (Stamp.Unix())
//	nanos    uint32, big endian (Stamp.Nanosecond())
//	data     the rest
//
// Seconds and nanoseconds rather than UnixNano because UnixNano only
// covers 1678 to 2262, and a zero time.Time must come back as zero.
//
// Hand-rolled rather than JSON: a typical item takes half the bytes (47
// against 92) and decodes twelve times faster (0.11µs against 1.4µs;
// BenchmarkCodec), and Roster decodes every item of a roster at each
// login.
const (
	formatRosterItem = 1
	formatOffline    = 1

	flagAskOut    = 1 << 0
	flagPendingIn = 1 << 1
	flagApproved  = 1 << 2
	flagHidden    = 1 << 3
	knownFlags    = flagAskOut | flagPendingIn | flagApproved | flagHidden

	offlineHeader = 1 + 8 + 4
)

// errCorrupt reports a value this package did not write, or wrote with a
// newer format. It is not a storage sentinel: nothing a caller can do
// about it except report it.
var errCorrupt = errors.New("boltstore: corrupt or unknown value format")

// appendRosterItem appends the encoding of it (without the contact) to
// buf.
func appendRosterItem(buf []byte, it storage.RosterItem) []byte {
	var flags byte
	if it.AskOut {
		flags |= flagAskOut
	}
	if it.PendingIn {
		flags |= flagPendingIn
	}
	if it.Approved {
		flags |= flagApproved
	}
	if it.Hidden {
		flags |= flagHidden
	}
	buf = append(buf, formatRosterItem, byte(it.Subscription), flags)
	buf = appendString(buf, it.Name)
	buf = appendString(buf, it.PendingInStatus)
	buf = binary.AppendUvarint(buf, uint64(len(it.Groups)))
	for _, g := range it.Groups {
		buf = appendString(buf, g)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// rosterItemSize is the exact encoded size of it, so encoding allocates
// once.
func rosterItemSize(it storage.RosterItem) int {
	n := 3 + strSize(it.Name) + strSize(it.PendingInStatus) + uvarintSize(uint64(len(it.Groups)))
	for _, g := range it.Groups {
		n += strSize(g)
	}
	return n
}

func strSize(s string) int { return uvarintSize(uint64(len(s))) + len(s) }

func uvarintSize(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func encodeRosterItem(it storage.RosterItem) []byte {
	return appendRosterItem(make([]byte, 0, rosterItemSize(it)), it)
}

// decodeRosterItem is the inverse of appendRosterItem. It copies out of
// b, which bbolt only lends for the transaction.
func decodeRosterItem(contact, b []byte) (storage.RosterItem, error) {
	if len(b) < 3 || b[0] != formatRosterItem || b[2]&^knownFlags != 0 {
		return storage.RosterItem{}, errCorrupt
	}
	d := decoder{b: b[3:]}
	it := storage.RosterItem{
		Contact:         string(contact),
		Subscription:    storage.Subscription(b[1]),
		AskOut:          b[2]&flagAskOut != 0,
		PendingIn:       b[2]&flagPendingIn != 0,
		Approved:        b[2]&flagApproved != 0,
		Hidden:          b[2]&flagHidden != 0,
		Name:            d.string(),
		PendingInStatus: d.string(),
	}
	n := d.uvarint()
	// Each group takes at least one byte, which bounds the allocation a
	// corrupt count can ask for.
	if n > uint64(len(d.b)) {
		return storage.RosterItem{}, errCorrupt
	}
	if n > 0 {
		it.Groups = make([]string, n)
		for i := range it.Groups {
			it.Groups[i] = d.string()
		}
	}
	if d.err || len(d.b) != 0 {
		return storage.RosterItem{}, errCorrupt
	}
	return it, nil
}

// decoder reads length-prefixed fields; after the first short read it
// returns zero values and sets err, so callers check once at the end.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	if d.err {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func encodeOffline(stamp time.Time, data []byte) []byte {
	buf := make([]byte, offlineHeader, offlineHeader+len(data))
	buf[0] = formatOffline
	binary.BigEndian.PutUint64(buf[1:], uint64(stamp.Unix()))
	binary.BigEndian.PutUint32(buf[9:], uint32(stamp.Nanosecond()))
	return append(buf, data...)
}

// decodeOffline is the inverse of encodeOffline; it copies out of b.
func decodeOffline(key, b []byte) (storage.OfflineMessage, error) {
	if len(key) != 8 || len(b) < offlineHeader || b[0] != formatOffline {
		return storage.OfflineMessage{}, errCorrupt
	}
	nsec := binary.BigEndian.Uint32(b[9:])
	if nsec >= 1e9 {
		return storage.OfflineMessage{}, errCorrupt
	}
	return storage.OfflineMessage{
		Seq:   binary.BigEndian.Uint64(key),
		Stamp: time.Unix(int64(binary.BigEndian.Uint64(b[1:])), int64(nsec)).UTC(),
		Data:  append([]byte{}, b[offlineHeader:]...),
	}, nil
}

// seqKey is the key of an offline message: big endian, so bbolt's byte
// order is Seq order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// corrupt wraps errCorrupt with where it was found.
func corrupt(err error, bucket string, owner, key []byte) error {
	return fmt.Errorf("%w (%s of %q, key %q)", err, bucket, owner, key)
}
