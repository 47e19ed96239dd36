package boltstore

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// committer groups concurrent writes into shared read-write transactions,
// so writers that arrive together pay for one fsync between them.
//
// It does what bolt.DB.Batch does, without Batch's timer: Batch holds
// every write back for MaxBatchDelay (10ms) hoping for company, which
// made a lone write 30 times slower than Update on an SSD (see the
// package benchmarks). Here the first writer commits at once, and writers
// that arrive while a commit is in flight queue up; when it ends, the
// oldest of them commits the whole queue. A group is thus as large as
// the arrivals during one commit: one write when the store is quiet, many
// when the disk is the bottleneck.
type committer struct {
	db *bolt.DB

	mu         sync.Mutex
	queue      []*call
	committing bool // a leader holds, or is about to take, the queue
}

type call struct {
	fn   func(*bolt.Tx) error
	done chan error // buffered; receives errLead, then the result
}

// errLead tells a queued writer that it now leads the next group.
var errLead = errors.New("boltstore: internal: lead the next commit")

// do runs fn in a read-write transaction, possibly shared with others,
// and returns fn's error or the commit's. Like DB.Batch, it may run fn
// more than once: when another member of its group fails, the group is
// rolled back and run again without that member, so fn must compute
// everything from the transaction and assign its results afresh on each
// run. One member failing never fails the others.
//
// do cannot be cancelled: once queued, a write may be committed by
// another goroutine, and the caller must learn whether it was.
func (c *committer) do(fn func(*bolt.Tx) error) error {
	me := &call{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, me)
	lead := !c.committing
	c.committing = true
	c.mu.Unlock()

	if !lead {
		if err := <-me.done; err != errLead {
			return err
		}
	}

	c.mu.Lock()
	group := c.queue
	c.queue = nil
	c.mu.Unlock()

	c.commit(group)

	// Lead one group only, then hand over: a leader that kept draining
	// the queue would wait on other people's writes under steady load.
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- errLead
	} else {
		c.committing = false
	}
	c.mu.Unlock()

	return <-me.done
}

// commit runs group in one transaction and reports to each member.
func (c *committer) commit(group []*call) {
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, m := range group {
				if err := safeCall(m.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			// Committed, or the commit itself failed: same for all.
			for _, m := range group {
				m.done <- err
			}
			return
		}
		// The group ran in order up to the failure, and runs the same
		// way again from the same state, so err is what the member
		// would have got alone at this point in the order.
		group[failed].done <- err
		group = slices.Delete(group, failed, failed+1)
	}
}

// safeCall keeps a panicking write from taking down the leader, which
// would leave the rest of its group waiting for ever.
func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in write: %v", p)
		}
	}()
	return fn(tx)
}
