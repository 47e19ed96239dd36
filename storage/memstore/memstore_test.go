package memstore_test

import (
	"testing"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunConformanceTests(t, func(t *testing.T) storage.Store { return memstore.New() })
}

func BenchmarkStore(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.Store { return memstore.New() })
}
