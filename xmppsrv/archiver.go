package xmppsrv

import (
	"sync"
	"time"

	"github.com/parleyhq/parley/storage"
)

// The archiver stores messages in batches: every message is durable before
// anyone sees it, yet a busy server pays one store call (and one fsync)
// per batch, not per message, and a client that sends many messages is
// not held up one fsync at a time. A batch is stored as soon as the one
// before it is, with no timer: at a moderate rate a message waits for one
// sync only (with boltstore, an append to its archive log; the indexes
// are built behind it).
//
// A session hands each message it reads to the archiver as a job; the
// archiver appends the messages of every waiting job in one call, then
// passes the batch to the deliverer, which runs each job's completion (the
// delivery, or the bounce if the store failed) in the order the jobs came.
// Jobs of one session therefore complete in the order it sent them, and
// while a session has jobs in flight even its unarchived messages (chat
// states, receipts) queue behind them. A session answers an XEP-0198 ack
// request only when its jobs are done, so an acknowledged message is a
// stored message.
type archiver struct {
	srv   *Server
	limit int32 // of a session's messages in flight (maxInflight)

	mu      sync.Mutex
	queue   []*archiveJob
	wake    chan struct{}
	batches chan []*archiveJob
	stopped bool
	done    chan struct{}
}

type archiveJob struct {
	sess *Session
	msgs []storage.ArchivedMessage
	err  error
	// complete runs on the deliverer, in job order, with the store's
	// verdict on msgs (nil when there were none).
	complete func(err error)
}

// maxBatch bounds the messages of one store transaction.
const maxBatch = 4096

// maxInflight bounds the messages of one session in the archiver, or half
// of Config.QueueLength if that is less: a client that sends faster than
// the server stores and delivers is held up (its stream is not read)
// rather than let it queue without end, and it cannot burst more at one
// recipient than the recipient's queue holds, which would disconnect the
// recipient as too slow.
const maxInflight = 1024

func newArchiver(srv *Server) *archiver {
	a := &archiver{srv: srv, limit: int32(max(1, min(maxInflight, srv.cfg.QueueLength/2))), wake: make(chan struct{}, 1), batches: make(chan []*archiveJob, 4), done: make(chan struct{})}
	go a.archive()
	go a.deliver()
	return a
}

// submit queues a job; false once the archiver has stopped.
func (a *archiver) submit(j *archiveJob) bool {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return false
	}
	j.sess.archiving.Add(1)
	a.queue = append(a.queue, j)
	select {
	case a.wake <- struct{}{}:
	default:
	}
	a.mu.Unlock()
	return true
}

func (a *archiver) archive() {
	defer close(a.batches)
	for {
		_, open := <-a.wake
		for {
			a.mu.Lock()
			n, jobs := 0, 0
			for jobs < len(a.queue) && n < maxBatch {
				n += len(a.queue[jobs].msgs)
				jobs++
			}
			batch := a.queue[:jobs:jobs]
			a.queue = a.queue[jobs:]
			stopped := a.stopped && len(a.queue) == 0
			a.mu.Unlock()
			if len(batch) > 0 {
				a.store(batch)
				a.batches <- batch
			}
			if stopped {
				return
			}
			if len(batch) == 0 {
				break
			}
		}
		if !open {
			return
		}
	}
}

// store appends the messages of a batch in one call; if that fails, each
// job is tried alone, so one bad message fails only its own job.
func (a *archiver) store(batch []*archiveJob) {
	n := 0
	for _, j := range batch {
		n += len(j.msgs)
	}
	all := make([]storage.ArchivedMessage, 0, n)
	for _, j := range batch {
		all = append(all, j.msgs...)
	}
	if len(all) == 0 {
		return
	}
	start := time.Now()
	err := a.srv.cfg.Chat.Archive(a.srv.ctx, all...)
	a.srv.m.ArchiveBatches.Add(1)
	a.srv.m.Archived.Add(int64(len(all)))
	a.srv.m.ArchiveNanos.Add(time.Since(start).Nanoseconds())
	if err == nil {
		return
	}
	for _, j := range batch {
		if len(j.msgs) > 0 {
			j.err = a.srv.cfg.Chat.Archive(a.srv.ctx, j.msgs...)
		}
	}
}

func (a *archiver) deliver() {
	defer close(a.done)
	for batch := range a.batches {
		for _, j := range batch {
			if j.complete != nil {
				j.complete(j.err)
			}
			if n := j.sess.archiving.Add(-1); n == 0 || n == a.limit/2 {
				select {
				case j.sess.archived <- struct{}{}:
				default:
				}
			}
		}
	}
}

// stop lets the archiver finish what was submitted, then waits for the
// last delivery.
func (a *archiver) stop() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		close(a.wake) // the loop drains the queue once more, then ends
	}
	a.mu.Unlock()
	<-a.done
}

// awaitArchived waits until every message the session submitted is
// archived and delivered (or bounced).
func (s *Session) awaitArchived() {
	for s.archiving.Load() > 0 {
		select {
		case <-s.archived:
		case <-time.After(20 * time.Millisecond):
		case <-s.srv.ctx.Done():
			return
		}
	}
}

// pipelined reports whether a session's messages are in the archiver, so
// that an unarchived one must queue behind them.
func (s *Session) pipelined() bool { return s.archiving.Load() > 0 }

// afterArchive runs complete once msgs are durable, or at once when there
// is nothing to store and nothing of the session's in flight.
func (srv *Server) afterArchive(s *Session, msgs []storage.ArchivedMessage, complete func(error)) {
	if len(msgs) == 0 && !s.pipelined() {
		complete(nil)
		return
	}
	// Held at the limit, the session goes on when half of it is done,
	// not at each message done.
	for s.archiving.Load() >= srv.archiver.limit {
		select {
		case <-s.archived:
		case <-time.After(20 * time.Millisecond):
		case <-srv.ctx.Done():
		}
		if srv.ctx.Err() != nil {
			break
		}
	}
	if srv.archiver.submit(&archiveJob{sess: s, msgs: msgs, complete: complete}) {
		return
	}
	var err error // shutting down: store synchronously
	if len(msgs) > 0 {
		err = srv.cfg.Chat.Archive(srv.ctx, msgs...)
	}
	complete(err)
}
