package memstore_test

import (
	"testing"

	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestRoomsConformance(t *testing.T) {
	storagetest.RunRoomsTests(t, func(t *testing.T) *memstore.Store { return memstore.New() })
}
