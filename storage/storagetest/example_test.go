package storagetest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/memstore"
	"github.com/parleyhq/parley/storage/storagetest"
)

// This file is what an integrator writes for their own adapter, say a
// PostgreSQL one, with memstore standing in for it.

// openMyStore stands for the adapter's constructor. A real one would
// connect to a scratch database, or create a fresh schema, named after
// the test, and drop it in a t.Cleanup.
func openMyStore(name string) (storage.Store, error) {
	return memstore.New(), nil
}

// TestMyStoreConformance runs the whole contract against the adapter. The
// kit asks for a fresh, empty store for each subtest and closes it
// afterwards; anything else the store leaves behind (tables, files) is
// the constructor's to clean up with t.Cleanup.
func TestMyStoreConformance(t *testing.T) {
	storagetest.RunConformanceTests(t, func(t *testing.T) storage.Store {
		s, err := openMyStore(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// BenchmarkMyStore gives numbers comparable with those of boltstore and
// memstore: go test -run xxx -bench MyStore.
func BenchmarkMyStore(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.Store {
		s, err := openMyStore(b.Name())
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

// A Faulty store lets a test check what its code does when the store
// fails: here the third write fails and leaves the queue as it was.
func ExampleFaulty() {
	ctx := context.Background()
	st := &storagetest.Faulty{Store: memstore.New(), FailAfter: 2}
	defer st.Close()

	for i := range 3 {
		_, err := st.PushOffline(ctx, "alice@example.com", time.Now(), []byte("hi"), 0)
		fmt.Printf("push %d: injected=%v\n", i+1, errors.Is(err, storagetest.ErrInjected))
	}
	msgs, _ := st.OfflineMessages(ctx, "alice@example.com")
	fmt.Println("stored:", len(msgs))

	// Heal the store; the caller's retry now lands.
	st.SetFailAfter(-1)
	_, err := st.PushOffline(ctx, "alice@example.com", time.Now(), []byte("hi"), 0)
	fmt.Println("retry:", err)
	// Output:
	// push 1: injected=false
	// push 2: injected=false
	// push 3: injected=true
	// stored: 2
	// retry: <nil>
}
