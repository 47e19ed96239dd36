package boltstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestMeetingsConformance(t *testing.T) {
	storagetest.RunMeetingsTests(t, func(t *testing.T) *boltstore.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"), nil)
	})
}

// Meetings written before a restart are there after it, with their
// chat sequence intact.
func TestMeetingsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, path, nil)
	m := storage.Meeting{ID: "m1", Token: "t1", Organizer: "alice@example.com", Title: "Weekly"}
	if err := s.CreateMeeting(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendMeetingMessage(ctx, "m1", storage.MeetingMessage{Body: "one"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, nil)
	defer s.Close()
	got, err := s.MeetingByToken(ctx, "t1")
	if err != nil || got.Title != "Weekly" || got.Version != 1 {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if seq, err := s.AppendMeetingMessage(ctx, "m1", storage.MeetingMessage{Body: "two"}); err != nil || seq != 2 {
		t.Errorf("seq after reopen = %d, %v; want 2", seq, err)
	}
}
