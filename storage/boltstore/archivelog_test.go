package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

func logMessages(owner, with string, from, n int) []storage.ArchivedMessage {
	var out []storage.ArchivedMessage
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		out = append(out, storage.ArchivedMessage{
			Owner: owner, With: with, ID: fmt.Sprintf("%012x0000aaaaaaaa", i+1), Stamp: t0.Add(time.Duration(i) * time.Second),
			Outgoing: i%2 == 0, ClientID: fmt.Sprintf("c%d", i), Body: fmt.Sprintf("message number %d about lunch", i), Data: []byte(fmt.Sprintf("<message>%d</message>", i)),
		})
	}
	return out
}

func countArchive(t *testing.T, s *Store, owner string) []storage.ArchivedMessage {
	t.Helper()
	got, complete, err := s.QueryMessages(context.Background(), owner, storage.ArchiveQuery{Max: 10000})
	if err != nil || !complete {
		t.Fatalf("QueryMessages: %d, complete %v, %v", len(got), complete, err)
	}
	return got
}

// logOf returns what the archive log holds while s is open: until the log
// grows past truncateAt, every record appended since Open.
func logOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(LogFiles(path)[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestArchiveLogReplay: records in the log that the database has not
// applied (a crash before the indexer's commit) are applied at Open, in
// full and with their indexes, and appends go on after them.
func TestArchiveLogReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := Open(src, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	log := logOf(t, src)
	s.Close()

	// A database that never applied them, with their log: as after a
	// crash right after the appends returned.
	dst := filepath.Join(dir, "dst.db")
	if s, err = Open(dst, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(LogFiles(dst)[0], log, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dst, nil); err != nil {
		t.Fatal(err)
	}
	if got := countArchive(t, s, "alice@x"); len(got) != 50 {
		t.Fatalf("after replay: %d messages, want 50", len(got))
	}
	if fi, _ := os.Stat(LogFiles(dst)[0]); fi.Size() != 0 {
		t.Errorf("log holds %d bytes after replay, want 0", fi.Size())
	}
	found, _, err := s.QueryMessages(ctx, "alice@x", storage.ArchiveQuery{Text: "number 42"})
	if err != nil || len(found) != 1 || found[0].ID != logMessages("", "", 42, 1)[0].ID {
		t.Fatalf("search after replay: %v, %v", found, err)
	}
	if err := s.SetMessageState(ctx, "alice@x", "bob@x", "c7", 2); err != nil {
		t.Fatalf("the client index after replay: %v", err)
	}
	// Replayed IDs are known: appending one again fails.
	if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", 49, 1)); err == nil {
		t.Fatal("an ID from the replayed log was accepted again")
	}
	if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", 50, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dst, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := countArchive(t, s, "alice@x"); len(got) != 51 {
		t.Fatalf("after reopening: %d messages, want 51", len(got))
	}
}

// TestArchiveLogTornTail: a record cut short by the crash (its append
// never returned) is dropped; the records before it are applied.
func TestArchiveLogTornTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := Open(src, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", 0, 3)); err != nil {
		t.Fatal(err)
	}
	first := int(s.alog.size[0])
	if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", 3, 3)); err != nil {
		t.Fatal(err)
	}
	log := logOf(t, src)[:s.alog.size[0]] // the records, without the zeros after them
	s.Close()

	for _, tc := range []struct {
		name string
		log  []byte
	}{
		{"cut", log[:len(log)-7]},
		{"cut, zeros after", append(bytes.Clone(log[:len(log)-7]), make([]byte, 4096)...)},
		{"header only", log[:first+logHeader]},
		{"flipped byte", func() []byte { b := bytes.Clone(log); b[len(b)-3] ^= 0x40; return b }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst.db")
			if err := os.WriteFile(LogFiles(dst)[0], tc.log, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dst, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := countArchive(t, s, "alice@x"); len(got) != 3 {
				t.Fatalf("%d messages, want the first record's 3", len(got))
			}
			if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", 3, 3)); err != nil {
				t.Fatalf("appending after a torn tail: %v", err)
			}
			if got := countArchive(t, s, "alice@x"); len(got) != 6 {
				t.Fatalf("%d messages, want 6", len(got))
			}
		})
	}
}

// TestArchiveLogAppliedOnce: a log whose records the database already
// holds (a crash between the indexer's commit and the log's truncation)
// adds nothing at Open.
func TestArchiveLogAppliedOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", 0, 20)); err != nil {
		t.Fatal(err)
	}
	log := logOf(t, path)
	countArchive(t, s, "alice@x") // applied
	s.Close()
	if err := os.WriteFile(LogFiles(path)[0], log, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := countArchive(t, s, "alice@x")
	if len(got) != 20 {
		t.Fatalf("%d messages, want 20", len(got))
	}
	res, _, err := s.QueryMessages(ctx, "alice@x", storage.ArchiveQuery{Text: "lunch"})
	if err != nil || len(res) != 20 {
		t.Fatalf("search: %d, %v (postings doubled?)", len(res), err)
	}
}

// TestArchiveReadsSeeAppends: every append that has returned is in the
// answer of a query made after it, whatever the indexer's progress.
func TestArchiveReadsSeeAppends(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "p.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("user%d@x", w)
			for i := range 100 {
				if err := s.AppendMessages(ctx, logMessages(owner, "bob@x", i, 1)); err != nil {
					errs <- err
					return
				}
				page, _, err := s.QueryMessages(ctx, owner, storage.ArchiveQuery{With: "bob@x", Last: true, Max: 1})
				if err != nil || len(page) != 1 || page[0].ID != logMessages("", "", i, 1)[0].ID {
					errs <- fmt.Errorf("%s after append %d: %v, %v", owner, i, page, err)
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
}

// TestArchiveLogClosed: appends after Close fail with ErrClosed, and
// Close leaves an empty log behind.
func TestArchiveLogClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(context.Background(), logMessages("a@x", "b@x", 0, 5)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.AppendMessages(context.Background(), logMessages("a@x", "b@x", 5, 1)); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("append after Close: %v", err)
	}
	if fi, err := os.Stat(LogFiles(path)[0]); err != nil || fi.Size() != 0 {
		t.Fatalf("log after Close: %v, %v", fi, err)
	}
}

// TestArchiveLogTwoFiles: the log moves to its other file once the one it
// writes is full and the other is applied, so it stays bounded; replay
// takes the records from both files in order.
func TestArchiveLogTwoFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s, err := Open(src, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.alog.segment = 2048
	sizes := func() (a, b int64) {
		s.alog.mu.Lock()
		defer s.alog.mu.Unlock()
		return s.alog.size[0], s.alog.size[1]
	}
	// Fill the first file, then write into the second.
	i := 0
	for a, b := sizes(); b == 0; a, b = sizes() {
		if a > 4096 {
			t.Fatalf("first file at %d bytes, the segment is 2048", a)
		}
		if err := s.AppendMessages(ctx, logMessages("alice@x", "bob@x", i, 2)); err != nil {
			t.Fatal(err)
		}
		i += 2
	}
	files := [][]byte{logOf(t, src), nil}
	if files[1], err = os.ReadFile(LogFiles(src)[1]); err != nil {
		t.Fatal(err)
	}
	// Many more appends, with reads so the indexer keeps up: the files
	// take turns and neither grows much past the segment.
	for range 200 {
		if err := s.AppendMessages(ctx, logMessages("carol@x", "bob@x", i, 2)); err != nil {
			t.Fatal(err)
		}
		i += 2
		countArchive(t, s, "carol@x")
		if a, b := sizes(); a > 4096 || b > 4096 {
			t.Fatalf("log files at %d and %d bytes, the segment is 2048", a, b)
		}
	}
	s.Close()

	// A database that applied none of the records of the two first files.
	dst := filepath.Join(dir, "dst.db")
	for k, f := range files {
		if err := os.WriteFile(LogFiles(dst)[k], f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if s, err = Open(dst, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := countArchive(t, s, "alice@x")
	if len(got) == 0 || len(got) != len(logMessages("", "", 0, len(got))) || got[len(got)-1].ID != logMessages("", "", len(got)-1, 1)[0].ID {
		t.Fatalf("replayed %d messages, not a run from the first", len(got))
	}
	if want := i - 400; len(got) != want {
		t.Fatalf("replayed %d messages, want %d (both files)", len(got), want)
	}
}

// TestArchiveLogIDsOutOfOrder: IDs that come out of order (two senders
// to one owner) are accepted, and a repeat is refused both while its
// first copy waits for the indexer and after it is applied.
func TestArchiveLogIDsOutOfOrder(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "p.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.alog.mu.Lock()
	s.alog.delay = time.Hour // nothing is applied until a read asks
	s.alog.mu.Unlock()
	m := func(i int) []storage.ArchivedMessage { return logMessages("alice@x", "bob@x", i, 1) }
	for _, i := range []int{5, 3, 9, 4} {
		if err := s.AppendMessages(ctx, m(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	for _, i := range []int{3, 9} {
		if err := s.AppendMessages(ctx, m(i)); err == nil {
			t.Fatalf("id %d accepted twice while waiting for the indexer", i)
		}
	}
	if got := countArchive(t, s, "alice@x"); len(got) != 4 {
		t.Fatalf("%d messages, want 4", len(got))
	}
	if err := s.AppendMessages(ctx, m(4)); err == nil {
		t.Fatal("id 4 accepted twice after it was applied")
	}
	two := append(m(7), m(7)...)
	if err := s.AppendMessages(ctx, two); err == nil {
		t.Fatal("an id twice in one call was accepted")
	}
	if err := s.AppendMessages(ctx, m(7)); err != nil {
		t.Fatalf("id 7 after a failed call that had it: %v", err)
	}
}

// TestArchiveLogReplayRepeatedID: a log whose records hold one ID twice
// (which AppendMessages never lets happen) still opens, with the message
// once in the archive and in its postings, whether the two records are
// applied in one transaction or the second finds the first in the
// database.
func TestArchiveLogReplayRepeatedID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	record := func(name string, batches ...[]storage.ArchivedMessage) []byte {
		path := filepath.Join(dir, name)
		s, err := Open(path, &Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, b := range batches {
			if err := s.AppendMessages(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		return logOf(t, path)[:s.alog.size[0]]
	}
	one := logMessages("alice@x", "bob@x", 0, 1)
	a := record("a.db", one) // seq 1: the message
	// seq 1: another message; seq 2: the message again and a new one.
	b := record("b.db", logMessages("alice@x", "bob@x", 5, 1), append(logMessages("alice@x", "bob@x", 0, 2), logMessages("carol@x", "bob@x", 3, 1)...))
	second := b[logHeader+binary.BigEndian.Uint32(b):]
	log := append(bytes.Clone(a), second...)
	check := func(t *testing.T, s *Store) {
		if got := countArchive(t, s, "alice@x"); len(got) != 2 {
			t.Fatalf("%d messages, want 2 (the repeated one once)", len(got))
		}
		if got := countArchive(t, s, "carol@x"); len(got) != 1 {
			t.Fatalf("carol: %d messages, want 1", len(got))
		}
		found, _, err := s.QueryMessages(ctx, "alice@x", storage.ArchiveQuery{Text: "lunch"})
		if err != nil || len(found) != 2 {
			t.Fatalf("search: %d, %v", len(found), err)
		}
	}
	t.Run("one transaction", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "dst.db")
		if err := os.WriteFile(LogFiles(dst)[0], log, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
	t.Run("second transaction", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "dst.db")
		// First the database applies seq 1 alone, then seq 2 comes.
		if err := os.WriteFile(LogFiles(dst)[0], a, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.WriteFile(LogFiles(dst)[0], log, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(dst, nil); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		check(t, s)
	})
}
