package boltstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/storage/storagetest"
	bolt "go.etcd.io/bbolt"
)

func open(t testing.TB, path string, opts *boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The conformance tests run with fsync on: they are the proof that the
// store works as shipped, batching included.
func TestConformance(t *testing.T) {
	storagetest.RunConformanceTests(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"), nil)
	})
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	stamp := time.Date(2025, 6, 1, 12, 0, 0, 42, time.UTC)
	item := storage.RosterItem{
		Contact: "bob@example.com", Name: "Bob", Groups: []string{"Friends"},
		Subscription: storage.SubFrom, PendingIn: true, PendingInStatus: "hi", Hidden: true,
	}

	s := open(t, path, nil)
	if _, err := s.PutRosterItem(ctx, "alice@example.com", item); err != nil {
		t.Fatal(err)
	}
	ver, err := s.PutRosterItem(ctx, "alice@example.com", storage.RosterItem{Contact: "carol@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if ver, err = s.DeleteRosterItem(ctx, "alice@example.com", "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	var lastSeq uint64
	for _, d := range []string{"one", "two", "three"} {
		if lastSeq, err = s.PushOffline(ctx, "alice@example.com", stamp, []byte(d), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteOffline(ctx, "alice@example.com", lastSeq-2); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUserData(ctx, "alice@example.com", "vcard", []byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, nil)
	defer s.Close()
	items, gotVer, err := s.Roster(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if gotVer != ver || len(items) != 1 || items[0].Name != "Bob" || !items[0].Hidden || items[0].PendingInStatus != "hi" {
		t.Errorf("roster after reopen = %+v, version %d; want [bob], version %d", items, gotVer, ver)
	}
	msgs, err := s.OfflineMessages(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || string(msgs[0].Data) != "two" || string(msgs[1].Data) != "three" ||
		msgs[1].Seq != lastSeq || !msgs[0].Stamp.Equal(stamp) {
		t.Errorf("offline after reopen = %+v", msgs)
	}
	// Both counters carry on from where they were.
	if seq, err := s.PushOffline(ctx, "alice@example.com", stamp, nil, 0); err != nil || seq <= lastSeq {
		t.Errorf("push after reopen: seq %d, %v; want > %d", seq, err, lastSeq)
	}
	if v, err := s.PutRosterItem(ctx, "alice@example.com", item); err != nil || v <= ver {
		t.Errorf("put after reopen: version %d, %v; want > %d", v, err, ver)
	}
	if v, err := s.UserData(ctx, "alice@example.com", "vcard"); err != nil || string(v) != "<vCard/>" {
		t.Errorf("userdata after reopen = %q, %v", v, err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	first := open(t, path, nil)

	start := time.Now()
	_, err := boltstore.Open(path, &boltstore.Options{Timeout: 200 * time.Millisecond})
	waited := time.Since(start)
	if !errors.Is(err, boltstore.ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "another process") {
		t.Errorf("error %q should name the file and say another process holds it", msg)
	}
	if waited < 100*time.Millisecond || waited > 5*time.Second {
		t.Errorf("second Open gave up after %v, want about 200ms", waited)
	}

	// Negative: no waiting at all.
	start = time.Now()
	if _, err := boltstore.Open(path, &boltstore.Options{Timeout: -1}); !errors.Is(err, boltstore.ErrLocked) {
		t.Fatalf("Open with negative timeout: err = %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited > 100*time.Millisecond {
		t.Errorf("negative timeout waited %v", waited)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, path, &boltstore.Options{Timeout: 200 * time.Millisecond}).Close()
}

func TestDefaultTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits a second")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, path, nil)
	defer s.Close()
	start := time.Now()
	_, err := boltstore.Open(path, nil)
	if !errors.Is(err, boltstore.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited < boltstore.DefaultTimeout/2 {
		t.Errorf("gave up after %v, want about %v", waited, boltstore.DefaultTimeout)
	}
}

func TestCreatesParentAndPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "does", "not", "exist", "parley.db")
	s := open(t, path, nil)
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Rosters and messages are private: no group or world access.
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode %v, want 0600", mode)
	}
}

func TestRefusesUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	open(t, path, nil).Close()
	rewrite(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{0, 0, 0, 99})
	})
	if s, err := boltstore.Open(path, nil); err == nil {
		s.Close()
		t.Fatal("Open accepted a file with layout 99")
	}
}

func TestCorruptValueIsAnErrorNotAPanic(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, path, nil)
	if _, err := s.PutRosterItem(ctx, "a@x", storage.RosterItem{Contact: "b@x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PushOffline(ctx, "a@x", time.Now(), nil, 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rewrite(t, path, func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("rosters")).Bucket([]byte("a@x")).Put([]byte("b@x"), []byte{1, 0, 0, 200}); err != nil {
			return err
		}
		return tx.Bucket([]byte("offline")).Bucket([]byte("a@x")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte{7})
	})
	s = open(t, path, nil)
	defer s.Close()
	if _, _, err := s.Roster(ctx, "a@x"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Roster of corrupt item: err = %v", err)
	}
	if _, err := s.RosterItem(ctx, "a@x", "b@x"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RosterItem of corrupt item: err = %v", err)
	}
	if _, err := s.OfflineMessages(ctx, "a@x"); err == nil {
		t.Error("OfflineMessages of corrupt message: no error")
	}
}

// rewrite edits the file behind the store's back, as a bug or a disk
// might.
func rewrite(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStore measures the store as shipped, fsync included; the
// numbers depend on the disk more than on the code.
func BenchmarkStore(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.Store {
		return open(b, filepath.Join(b.TempDir(), "parley.db"), nil)
	})
}

// BenchmarkStoreNoSync leaves out the disk, to show the code's own cost.
func BenchmarkStoreNoSync(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.Store {
		return open(b, filepath.Join(b.TempDir(), "parley.db"), &boltstore.Options{NoSync: true})
	})
}
