// Package boltstore is Parley's default storage.Store: everything in one
// bbolt file, plus the message archive's write-ahead log beside it
// (LogFiles), with no server to run.
//
//	st, err := boltstore.Open("/var/lib/parley/parley.db", nil)
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//
// Only one Store may have the file open at a time; bbolt holds an
// exclusive lock on it, and a second Open fails with ErrLocked after
// Options.Timeout.
//
// Every write commits in one bbolt read-write transaction, synced to disk
// before the method returns. Writes that arrive while another commit is in
// flight (offline messages for many users, say) are grouped into the next
// transaction, so they share the cost of one fsync instead of queuing for
// one each; a lone write is not held back.
//
// Archive appends (AppendMessages) are the exception, because they are
// the hot path of a chat server: they are synced to the archive log, one
// sequential write shared by concurrent appends, and a background indexer
// moves them into the archive's buckets in large transactions. Archive
// reads wait for the indexer, so they see every append that has returned;
// after a crash, Open applies what the log holds (see archivelog.go).
//
// # Layout
//
// Top-level buckets, one per concern, each holding one nested bucket per
// owner (the bare JID):
//
//	rosters/<owner>/<contact>   roster item; the nested bucket's sequence
//	                            is the owner's roster version
//	offline/<owner>/<seq>       offline message; seq is 8 bytes big endian
//	                            so keys sort in push order; the nested
//	                            bucket's sequence is the last seq handed out
//	userdata/<owner>/<key>      value as given
//	meta/format                 layout version of the file
//	meta/archive-log-seq        the last archive log record applied
//
// A nested bucket is never deleted once created, so neither counter ever
// goes back, even when a roster or queue is emptied.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is returned by Open when another process, or another Store in
// this one, holds the file and did not let go within Options.Timeout.
var ErrLocked = errors.New("boltstore: database file is in use by another process")

// errEmpty rejects empty owners, contacts and keys: bbolt cannot store an
// empty key, and failing early gives a clearer error than bbolt's.
var errEmpty = errors.New("boltstore: empty owner, contact or key")

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero: long enough to ride out a restart in which the
// old process is still closing, short enough to report a second instance
// promptly.
const DefaultTimeout = time.Second

// Options configures Open. The zero value, and a nil *Options, give the
// defaults.
type Options struct {
	// Timeout is how long Open waits for another holder of the file to
	// let go before it returns ErrLocked. Zero means DefaultTimeout; a
	// negative value tries once and does not wait.
	Timeout time.Duration

	// NoSync skips fsync after each write. A crash can then lose or
	// corrupt recent writes, breaking the storage contract: use it only
	// in tests and benchmarks.
	NoSync bool
}

// Bucket names, and the layout version in meta.
var (
	bucketRosters  = []byte("rosters")
	bucketOffline  = []byte("offline")
	bucketUserData = []byte("userdata")
	bucketMeta     = []byte("meta")

	keyFormat = []byte("format")
)

// fileFormat is the layout version written into new files. Open refuses
// a file with a different one rather than misread it.
const fileFormat = 1

// Store is a storage.Store on one bbolt file. All methods are safe for
// concurrent use; reads run in parallel with each other and with writes.
type Store struct {
	db     *bolt.DB
	path   string
	writes committer
	alog   *archiveLog
	closed atomic.Bool
}

var _ storage.Store = (*Store)(nil)

// Open opens the store at path, creating the file (mode 0600) and its
// parent directory (mode 0700) when missing. opts may be nil.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.Timeout,
		NoSync:  o.NoSync,
		// The map freelist keeps commits cheap as the file grows and
		// frees pages (offline queues churn).
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v for its lock; is another Parley running?)", ErrLocked, path, o.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketRosters, bucketOffline, bucketUserData, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyFormat); {
		case v == nil:
			return meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, fileFormat))
		case len(v) != 4 || binary.BigEndian.Uint32(v) != fileFormat:
			return fmt.Errorf("file layout %x, this version reads %d", v, fileFormat)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, writes: committer{db: db}}
	if s.alog, err = openArchiveLog(s, LogFiles(path), o.NoSync); err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return s, nil
}

// LogFiles returns the two files of the archive log of the store at path:
// the store's file name with ".archive-log" and ".archive-log-2" added.
// They belong to the store: back up, move and delete the three files
// together, with the store closed (Close leaves the log files empty).
func LogFiles(path string) []string {
	return []string{path + ".archive-log", path + ".archive-log-2"}
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Close closes the file, waiting for transactions in flight. Later calls,
// Close included, return storage.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return storage.ErrClosed
	}
	// The log first: its indexer applies what is logged, through db.
	lerr := s.alog.close()
	if err := errors.Join(lerr, s.db.Close()); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.wrap(s.db.View(fn))
}

// update runs fn in a read-write transaction, which concurrent updates
// may share (see committer): fn may run more than once and must assign
// its results afresh each time.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.wrap(s.writes.do(fn))
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return ctx.Err()
}

// wrap gives errors from bbolt the package prefix and turns "database not
// open" (a call racing with Close) into storage.ErrClosed.
func (s *Store) wrap(err error) error {
	switch {
	case err == nil,
		errors.Is(err, storage.ErrNotFound),
		errors.Is(err, storage.ErrLimit),
		errors.Is(err, storage.ErrClosed),
		errors.Is(err, errEmpty),
		errors.Is(err, errCorrupt):
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return storage.ErrClosed
	}
	return fmt.Errorf("boltstore: %w", err)
}

// get is Bucket.Get that can tell an empty value from a missing key,
// which Get cannot (both may come back nil).
func get(b *bolt.Bucket, key []byte) ([]byte, bool) {
	if b == nil {
		return nil, false
	}
	k, v := b.Cursor().Seek(key)
	if k == nil || !bytes.Equal(k, key) {
		return nil, false
	}
	return v, true
}

// Roster returns all of owner's items, sorted by contact, and the roster
// version.
func (s *Store) Roster(ctx context.Context, owner string) ([]storage.RosterItem, uint64, error) {
	var (
		items []storage.RosterItem
		ver   uint64
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRosters).Bucket([]byte(owner))
		if b == nil {
			return nil
		}
		ver = b.Sequence()
		return b.ForEach(func(k, v []byte) error {
			it, err := decodeRosterItem(k, v)
			if err != nil {
				return corrupt(err, "rosters", []byte(owner), k)
			}
			items = append(items, it)
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return items, ver, nil
}

// RosterItem returns one item, or storage.ErrNotFound.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	var it storage.RosterItem
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRosters).Bucket([]byte(owner))
		v, ok := get(b, []byte(contact))
		if !ok {
			return storage.ErrNotFound
		}
		var err error
		if it, err = decodeRosterItem([]byte(contact), v); err != nil {
			return corrupt(err, "rosters", []byte(owner), []byte(contact))
		}
		return nil
	})
	return it, err
}

// PutRosterItem creates or replaces item and returns the new version.
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (uint64, error) {
	if owner == "" || item.Contact == "" {
		return 0, errEmpty
	}
	key, val := []byte(item.Contact), encodeRosterItem(item)
	var ver uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketRosters).CreateBucketIfNotExists([]byte(owner))
		if err != nil {
			return err
		}
		if err := b.Put(key, val); err != nil {
			return err
		}
		ver, err = b.NextSequence()
		return err
	})
	if err != nil {
		return 0, err
	}
	return ver, nil
}

// DeleteRosterItem removes the item and returns the new version, or
// storage.ErrNotFound without changing the version.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (uint64, error) {
	var ver uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRosters).Bucket([]byte(owner))
		if _, ok := get(b, []byte(contact)); !ok {
			return storage.ErrNotFound
		}
		if err := b.Delete([]byte(contact)); err != nil {
			return err
		}
		var err error
		ver, err = b.NextSequence()
		return err
	})
	if err != nil {
		return 0, err
	}
	return ver, nil
}

// queueLen counts owner's queued messages in O(log n). It relies on the
// keys of a queue being a contiguous run of seqs: NextSequence hands them
// out one by one, and DeleteOffline only ever removes a prefix.
func queueLen(b *bolt.Bucket) uint64 {
	c := b.Cursor()
	first, _ := c.First()
	if first == nil {
		return 0
	}
	last, _ := c.Last()
	return binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1
}

// PushOffline appends a message to owner's queue and returns its Seq,
// starting at 1; or storage.ErrLimit, storing nothing, when limit > 0 and
// the queue already holds limit messages. The check and the append are
// one transaction.
func (s *Store) PushOffline(ctx context.Context, owner string, stamp time.Time, data []byte, limit int) (uint64, error) {
	if owner == "" {
		return 0, errEmpty
	}
	val := encodeOffline(stamp, data)
	var seq uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketOffline).CreateBucketIfNotExists([]byte(owner))
		if err != nil {
			return err
		}
		if limit > 0 && queueLen(b) >= uint64(limit) {
			return storage.ErrLimit
		}
		if seq, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Put(seqKey(seq), val)
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// OfflineMessages returns owner's queue in push order.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	var msgs []storage.OfflineMessage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOffline).Bucket([]byte(owner))
		if b == nil {
			return nil
		}
		if n := queueLen(b); n > 0 {
			msgs = make([]storage.OfflineMessage, 0, n)
		}
		return b.ForEach(func(k, v []byte) error {
			m, err := decodeOffline(k, v)
			if err != nil {
				return corrupt(err, "offline", []byte(owner), k)
			}
			msgs = append(msgs, m)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// DeleteOffline removes owner's messages with Seq <= upTo.
func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo uint64) error {
	// Seqs start at 1, so there is nothing to do, and no need to take
	// the writer lock, for upTo 0.
	if upTo == 0 {
		return s.check(ctx)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOffline).Bucket([]byte(owner))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		// Back to First after each delete: a bbolt cursor may skip the
		// next key after Delete.
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upTo; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// UserData returns the value under key, or storage.ErrNotFound.
func (s *Store) UserData(ctx context.Context, owner, key string) ([]byte, error) {
	var val []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v, ok := get(tx.Bucket(bucketUserData).Bucket([]byte(owner)), []byte(key))
		if !ok {
			return storage.ErrNotFound
		}
		// Copy: bbolt's memory is only valid inside the transaction.
		// Non-nil even when empty, like memstore.
		val = append([]byte{}, v...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return val, nil
}

// PutUserData stores value under key, replacing what was there.
func (s *Store) PutUserData(ctx context.Context, owner, key string, value []byte) error {
	if owner == "" || key == "" {
		return errEmpty
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketUserData).CreateBucketIfNotExists([]byte(owner))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), value)
	})
}

// DeleteUserData removes the value under key; a missing one is not an
// error.
func (s *Store) DeleteUserData(ctx context.Context, owner, key string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUserData).Bucket([]byte(owner))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
}
