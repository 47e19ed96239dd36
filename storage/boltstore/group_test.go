package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCommitterGroupsAndIsolatesFailures queues writes behind a commit
// that is held open, so they form one group, and checks that a member
// that fails or panics takes only itself down.
func TestCommitterGroupsAndIsolatesFailures(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &committer{db: db}
	bucket := []byte("b")
	put := func(key string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			return b.Put([]byte(key), []byte("v"))
		}
	}

	held, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := c.do(func(tx *bolt.Tx) error {
			select {
			case <-held:
			default:
				close(held)
			}
			<-release
			return put("first")(tx)
		})
		if err != nil {
			t.Errorf("first: %v", err)
		}
	})
	<-held

	errRefused := errors.New("refused")
	var runs sync.Map // key -> times its fn ran
	counted := func(key string, fn func(*bolt.Tx) error) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			n, _ := runs.LoadOrStore(key, new(int))
			*n.(*int)++
			return fn(tx)
		}
	}
	results := make(map[string]error)
	var mu sync.Mutex
	submit := func(key string, fn func(*bolt.Tx) error) {
		wg.Go(func() {
			err := c.do(counted(key, fn))
			mu.Lock()
			results[key] = err
			mu.Unlock()
		})
	}
	for i := range 5 {
		submit(fmt.Sprint("ok", i), put(fmt.Sprint("ok", i)))
	}
	// Writes then fails: its write must not survive.
	submit("refuse", func(tx *bolt.Tx) error {
		if err := put("refuse")(tx); err != nil {
			return err
		}
		return errRefused
	})
	submit("panic", func(tx *bolt.Tx) error {
		if err := put("panic")(tx); err != nil {
			return err
		}
		panic("boom")
	})

	// Wait until all seven are queued behind the held commit.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		n := len(c.queue)
		c.mu.Unlock()
		if n == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want 7", n)
		}
	}
	close(release)
	wg.Wait()

	for i := range 5 {
		if err := results[fmt.Sprint("ok", i)]; err != nil {
			t.Errorf("ok%d: %v", i, err)
		}
	}
	if err := results["refuse"]; !errors.Is(err, errRefused) {
		t.Errorf("refuse: err = %v", err)
	}
	if err := results["panic"]; err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panic: err = %v", err)
	}
	// The good writes ran in one group, retried at most twice (once per
	// failing member), not once per transaction of their own.
	if n, _ := runs.Load("ok0"); *n.(*int) > 3 {
		t.Errorf("ok0 ran %d times", *n.(*int))
	}
	db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, k := range []string{"first", "ok0", "ok4"} {
			if b.Get([]byte(k)) == nil {
				t.Errorf("%s not stored", k)
			}
		}
		for _, k := range []string{"refuse", "panic"} {
			if b.Get([]byte(k)) != nil {
				t.Errorf("failed write %q was stored", k)
			}
		}
		return nil
	})

	// The committer is idle again: a lone write goes straight through.
	if err := c.do(put("after")); err != nil {
		t.Fatal(err)
	}
}
