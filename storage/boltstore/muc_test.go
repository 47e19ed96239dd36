package boltstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestRoomsConformance(t *testing.T) {
	storagetest.RunRoomsTests(t, func(t *testing.T) *boltstore.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"), &boltstore.Options{NoSync: true})
	})
}

// Rooms written before a restart are there after it.
func TestRoomsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, path, nil)
	r := storage.Room{JID: "team@conference.example.com", Name: "Team", Archive: true,
		Affiliations: []storage.RoomAffiliation{{JID: "alice@example.com", Affiliation: 4}}}
	if err := s.PutRoom(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, nil)
	defer s.Close()
	got, err := s.Room(ctx, r.JID)
	if err != nil || got.Name != "Team" || len(got.Affiliations) != 1 || got.Affiliations[0].Affiliation != 4 {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}
