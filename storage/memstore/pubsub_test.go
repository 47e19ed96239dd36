package memstore_test

import (
	"testing"

	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestPubsubConformance(t *testing.T) {
	storagetest.RunPubsubTests(t, func(t *testing.T) *memstore.Store { return memstore.New() })
}
