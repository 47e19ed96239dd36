package memstore_test

import (
	"testing"

	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestMeetingsConformance(t *testing.T) {
	storagetest.RunMeetingsTests(t, func(t *testing.T) *memstore.Store { return memstore.New() })
}
