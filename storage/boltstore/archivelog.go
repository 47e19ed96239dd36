package boltstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
)

// The archive's write-ahead log.
//
// AppendMessages does not wait for the archive's bbolt transaction, which
// dirties several B+tree pages per message (four indexes per owner, two
// owners per message) and costs tens of microseconds of CPU per message
// plus megabytes of page writes per commit. It writes the messages as one
// record at the end of a log file next to the database, and returns once
// the record is synced: one sequential write and one fdatasync, shared by
// every append that arrives while the previous sync is under way (group
// commit, as for the database). A goroutine, the indexer, then applies the
// logged records to the archive's buckets in large transactions, each of
// which also records the sequence number of the last record it applied.
//
// Reads of the archive (QueryMessages, and SetMessageState and
// DeleteConversation, which read before they write) first wait until
// every record logged before they were called is applied, so a message is
// visible as soon as AppendMessages has returned, as before; they may
// wait up to one indexer transaction. When the indexer falls behind,
// appends wait for it once maxPendingBytes of records are unapplied, so
// memory stays bounded and the indexer sets the pace under overload.
//
// On Open, the records the database has not applied (those after a crash)
// are applied before the store is returned: an acknowledged message is in
// the log, and every message in the log ends up in the archive.
//
// The log is two files (LogFiles), written in turn: once the one being
// written holds segmentSize bytes and every record of the other is
// applied, the other is emptied and written next. So the log stays near
// segmentSize + maxPendingBytes at most, even when the indexer never
// catches up completely under sustained load. Replay reads both and
// applies, in seq order, the records above the database's.
//
// # Record format
//
//	length   uint32, big endian: of the payload
//	checksum uint32, big endian: CRC-32C of seq and payload
//	seq      uint64, big endian: 1 more than the record before
//	payload  count uvarint, then count times:
//	         lp(owner) lp(id) lp(message, in message format 1)
//
// A record that is cut short or fails its checksum, or zeros (the file is
// filled with zeros ahead of its records), end a file: only the tail can
// be torn, and its append had not returned. A file written in turn again
// still holds older records after the new ones; their seqs are below the
// database's, so replay skips them.

const (
	logHeader = 16

	// maxPendingBytes bounds the records logged but not yet applied.
	maxPendingBytes = 64 << 20

	// maxApply bounds the messages of one indexer transaction, so reads
	// waiting for the indexer wait for a bounded transaction.
	maxApply = 16384

	// indexDelay is how long the indexer lets records gather before a
	// transaction when nobody waits for them: at a moderate rate, large
	// transactions instead of one per log write. Reads hurry it.
	indexDelay = 100 * time.Millisecond

	// preallocStep is how far ahead of its records the log file is
	// filled with zeros.
	preallocStep = 1 << 20

	// segmentSize is the size at which the log moves on to its other
	// file.
	segmentSize = 16 << 20
)

var (
	keyArchiveLog = []byte("archive-log-seq")
	crcTable      = crc32.MakeTable(crc32.Castagnoli)
)

// errAlogClosed is what a log write returns once Close has begun.
var errAlogClosed = storage.ErrClosed

type archiveLog struct {
	s       *Store
	files   [2]*os.File
	noSync  bool
	segment int64 // segmentSize; tests lower it

	// amu serialises the ID checks of appends with the order in which
	// their records enter the queue.
	amu sync.Mutex
	// newest holds, for owners appended to since Open, the highest ID
	// logged for them: an ID above it cannot be in their archive, which
	// spares the common append a database read, and an owner not in it
	// has no records in the log that the database lacks.
	newest map[string]string

	mu       sync.Mutex
	queue    []*logWrite // for the next leader
	inflight []*logWrite // the group a leader is writing
	writing  bool        // a leader holds, or is about to take, the queue
	active   int         // the file written to
	size     [2]int64    // of each file's records
	alloc    [2]int64    // of each file: records, then zeros
	last     [2]uint64   // seq of each file's last record, 0 if none
	logged   uint64      // seq of the last durable record
	pending  []*logRecord
	pendingB int  // bytes of pending
	pendingN int  // messages of pending
	hurry    bool // a reader waits for the indexer
	delay    time.Duration
	applied  uint64 // seq of the last record applied to the buckets
	err      error  // the indexer's failure: every later archive call fails
	changed  chan struct{}
	closing  bool // no more writes; the indexer drains and stops
	idxDone  chan struct{}
}

type logRecord struct {
	seq     uint64
	payload []byte
	n       int // messages
}

type idKey struct{ owner, id string }

type logWrite struct {
	rec  *logRecord
	done chan error // buffered; errLead, then the result
}

// openArchiveLog opens the log's files, applies the records the database
// lacks, empties the files and starts the indexer.
func openArchiveLog(s *Store, paths []string, noSync bool) (*archiveLog, error) {
	l := &archiveLog{s: s, noSync: noSync, segment: segmentSize, delay: indexDelay, newest: make(map[string]string), changed: make(chan struct{}), idxDone: make(chan struct{})}
	for i, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		l.files[i] = f
	}
	if err := l.replay(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("archive log %s: %w", paths[0], err)
	}
	go l.index()
	return l, nil
}

func (l *archiveLog) closeFiles() error {
	var errs []error
	for _, f := range l.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// replay applies the log's records after the database's last one.
func (l *archiveLog) replay() error {
	err := l.s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyArchiveLog); len(v) == 8 {
			l.applied = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.logged = l.applied
	var recs []*logRecord
	for _, f := range l.files {
		data, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		recs = append(recs, readRecords(data, l.applied)...)
	}
	slices.SortFunc(recs, func(a, b *logRecord) int { return cmp.Compare(a.seq, b.seq) })
	// Apply the run that follows the database's last record. Anything
	// after a gap was never acknowledged (its file's earlier record was
	// torn), or is left from before a file was emptied.
	n := 0
	for n < len(recs) && recs[n].seq == l.applied+uint64(n)+1 {
		n++
	}
	recs = recs[:n]
	for len(recs) > 0 {
		n, msgs := 0, 0
		for n < len(recs) && (msgs < maxApply || n == 0) {
			msgs += recs[n].n
			n++
		}
		if err := l.apply(recs[:n]); err != nil {
			return err
		}
		l.applied = recs[n-1].seq
		recs = recs[n:]
	}
	l.logged = l.applied
	for i := range l.files {
		if err := l.empty(i); err != nil {
			return err
		}
	}
	return nil
}

// readRecords returns the records of one file with a seq above applied,
// up to the first torn or foreign one.
func readRecords(data []byte, applied uint64) []*logRecord {
	var recs []*logRecord
	for len(data) >= logHeader {
		n := binary.BigEndian.Uint32(data)
		if n == 0 || uint64(n) > uint64(len(data)-logHeader) || crc32.Checksum(data[8:logHeader+n], crcTable) != binary.BigEndian.Uint32(data[4:]) {
			break // a torn tail
		}
		seq := binary.BigEndian.Uint64(data[8:])
		payload := data[logHeader : logHeader+n]
		data = data[logHeader+n:]
		if seq > applied {
			cnt, _ := binary.Uvarint(payload)
			recs = append(recs, &logRecord{seq: seq, payload: payload, n: int(cnt)})
		}
	}
	return recs
}

// empty truncates file i; the caller holds mu or owns l alone.
func (l *archiveLog) empty(i int) error {
	if err := l.files[i].Truncate(0); err != nil {
		return err
	}
	l.size[i], l.last[i], l.alloc[i] = 0, 0, 0
	if l.noSync {
		return nil
	}
	return l.files[i].Sync()
}

// loggedMessage is one message of a record, aliasing the record.
type loggedMessage struct {
	owner string
	id    []byte
	val   []byte // message format 1
}

func decodeRecord(payload []byte, out []loggedMessage) ([]loggedMessage, error) {
	d := decoder{b: payload}
	n := d.uvarint()
	for range n {
		owner, id, val := d.bytes(), d.bytes(), d.bytes()
		if d.err || len(owner) == 0 || len(id) == 0 || len(val) < messageHeader || val[0] != formatMessage {
			return out, errCorrupt
		}
		out = append(out, loggedMessage{string(owner), id, val})
	}
	if d.err || len(d.b) != 0 {
		return out, errCorrupt
	}
	return out, nil
}

// apply writes records to the archive's buckets in one transaction that
// also records the last one's seq.
func (l *archiveLog) apply(recs []*logRecord) error {
	var msgs []loggedMessage
	for _, r := range recs {
		var err error
		if msgs, err = decodeRecord(r.payload, msgs); err != nil {
			return fmt.Errorf("record %d: %w", r.seq, err)
		}
	}
	batch, err := prepareIndex(msgs)
	if err != nil {
		return err
	}
	seq := binary.BigEndian.AppendUint64(nil, recs[len(recs)-1].seq)
	err = l.s.wrap(l.s.writes.do(func(tx *bolt.Tx) error {
		batch := batch
		// AppendMessages checked the IDs; this keeps a record that
		// slipped through (or one replayed twice) from corrupting the
		// postings.
		if dup := present(tx, batch); dup != nil {
			kept := slices.DeleteFunc(slices.Clone(msgs), func(m loggedMessage) bool { return dup[[2]string{m.owner, string(m.id)}] })
			var err error
			if batch, err = prepareIndex(kept); err != nil {
				return err
			}
		}
		for _, oa := range batch {
			if err := oa.write(tx); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyArchiveLog, seq)
	}))
	return err
}

// append checks msgs' IDs, logs them as one record and returns once it is
// durable.
func (l *archiveLog) append(ctx context.Context, msgs []storage.ArchivedMessage) error {
	size := 0
	for _, m := range msgs {
		size += strSize(m.Owner) + strSize(m.ID) + 4 + messageHeader + strSize(m.With) + strSize(m.ClientID) + strSize(m.Body) + len(m.Data)
	}
	payload := binary.AppendUvarint(make([]byte, 0, size+binary.MaxVarintLen64), uint64(len(msgs)))
	for _, m := range msgs {
		payload = appendString(payload, m.Owner)
		payload = appendString(payload, m.ID)
		payload = binary.AppendUvarint(payload, uint64(messageSize(m)))
		payload = appendMessage(payload, m)
	}
	rec := &logRecord{payload: payload, n: len(msgs)}

	if err := l.room(ctx); err != nil {
		return err
	}
	l.amu.Lock()
	if err := l.checkIDs(ctx, msgs); err != nil {
		l.amu.Unlock()
		return err
	}
	me := &logWrite{rec: rec, done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, me)
	lead := !l.writing
	l.writing = true
	l.mu.Unlock()
	l.amu.Unlock()

	if !lead {
		if err := <-me.done; err != errLead {
			return err
		}
	}
	l.mu.Lock()
	group := l.queue
	l.queue, l.inflight = nil, group
	closing := l.closing
	l.mu.Unlock()

	err := errAlogClosed
	if !closing {
		err = l.write(group)
	}
	for _, w := range group {
		w.done <- err
	}

	l.mu.Lock()
	l.inflight = nil
	if len(l.queue) > 0 {
		l.queue[0].done <- errLead
	} else {
		l.writing = false
		l.signal()
	}
	l.mu.Unlock()
	return <-me.done
}

// write appends a group's records in one write and syncs them.
func (l *archiveLog) write(group []*logWrite) error {
	l.mu.Lock()
	if l.size[l.active] >= l.segment && l.last[1-l.active] <= l.applied {
		// Everything in the other file is applied: write there next,
		// over its old records (replay skips what it finds of them).
		l.active = 1 - l.active
		l.size[l.active], l.last[l.active] = 0, 0
	}
	f, seq, off, alloc := l.files[l.active], l.logged, l.size[l.active], l.alloc[l.active]
	l.mu.Unlock()
	n := 0
	for _, w := range group {
		n += logHeader + len(w.rec.payload)
	}
	buf := make([]byte, 0, n)
	for _, w := range group {
		seq++
		w.rec.seq = seq
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(w.rec.payload)))
		buf = binary.BigEndian.AppendUint32(buf, 0)
		buf = binary.BigEndian.AppendUint64(buf, seq)
		buf = append(buf, w.rec.payload...)
		binary.BigEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], crcTable))
	}
	end := off + int64(len(buf))
	if end > alloc {
		// Zeros ahead of the records, so that most appends overwrite
		// allocated blocks: fdatasync then has no metadata (the file's
		// size) to commit, and does not wait for a journal commit, and
		// with it for the database's page writes.
		alloc = (end + preallocStep) &^ (preallocStep - 1)
		buf = append(buf, make([]byte, alloc-end)...)
	}
	_, err := f.WriteAt(buf, off)
	if err == nil && !l.noSync {
		err = fdatasync(f)
	}
	if err != nil {
		// Drop what may have reached the file: those appends fail, and
		// a failed append must not reappear at the next Open.
		f.Truncate(off)
		l.mu.Lock()
		l.alloc[l.active] = off
		l.inflight = nil
		l.mu.Unlock()
		return fmt.Errorf("boltstore: archive log: %w", err)
	}
	l.mu.Lock()
	l.size[l.active] = end
	l.alloc[l.active] = alloc
	l.last[l.active] = seq
	l.logged = seq
	l.inflight = nil
	for _, w := range group {
		l.pending = append(l.pending, w.rec)
		l.pendingB += len(w.rec.payload)
		l.pendingN += w.rec.n
	}
	l.signal()
	l.mu.Unlock()
	return nil
}

// signal wakes everyone waiting for a change; the caller holds mu.
func (l *archiveLog) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// room waits until the indexer's backlog leaves room for more.
func (l *archiveLog) room(ctx context.Context) error {
	for {
		l.mu.Lock()
		err, full, ch := l.err, l.pendingB >= maxPendingBytes, l.changed
		l.mu.Unlock()
		if err != nil || !full {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// caughtUp waits until every record logged before the call is applied:
// the archive's buckets then hold every append that has returned.
func (l *archiveLog) caughtUp(ctx context.Context) error {
	l.mu.Lock()
	target := l.logged
	l.mu.Unlock()
	for {
		l.mu.Lock()
		applied, err, closing := l.applied, l.err, l.closing
		if applied < target && !l.hurry {
			l.hurry = true
			l.signal()
		}
		ch := l.changed
		l.mu.Unlock()
		switch {
		case err != nil:
			return err
		case applied >= target:
			return nil
		case closing:
			return storage.ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkIDs rejects msgs when one of their IDs is in its owner's archive,
// logged and not yet applied, or comes twice; the caller holds amu. IDs
// are made in increasing order, so nearly every one is above its owner's
// newest and needs no read. An owner not seen since Open has nothing in
// the log the database lacks, so a database read settles it; only an ID
// out of order (at or below its owner's newest) makes checkIDs look
// through the records not yet applied as well.
func (l *archiveLog) checkIDs(ctx context.Context, msgs []storage.ArchivedMessage) error {
	var upd map[string]string
	if len(msgs) <= 2 {
		// The common call, both copies of one message: no map.
		if l.fresh(msgs) {
			for _, m := range msgs {
				l.newest[m.Owner] = m.ID
			}
			return nil
		}
	}
	upd = make(map[string]string)
	fresh := true
	for _, m := range msgs {
		n, ok := upd[m.Owner]
		if !ok {
			n, ok = l.newest[m.Owner]
		}
		if !ok || m.ID <= n {
			fresh = false
			break
		}
		upd[m.Owner] = m.ID
	}
	if !fresh {
		// An owner not seen since Open (the database then holds all of
		// theirs), or an ID out of order.
		clear(upd)
		var logged map[idKey]bool
		for _, m := range msgs {
			if n, ok := l.newest[m.Owner]; ok && m.ID <= n {
				// Read before the database: a record the indexer
				// applies meanwhile leaves the pending list only once
				// the database has it.
				logged = l.unappliedIDs()
				break
			}
		}
		seen := make(map[idKey]bool, len(msgs))
		err := l.s.view(ctx, func(tx *bolt.Tx) error {
			for _, m := range msgs {
				k := idKey{m.Owner, m.ID}
				if seen[k] {
					return fmt.Errorf("boltstore: id %q comes twice for %q", m.ID, m.Owner)
				}
				seen[k] = true
				ab := readArchive(tx, m.Owner)
				if logged[k] || ab != nil && ab.msg.Get([]byte(m.ID)) != nil {
					return fmt.Errorf("boltstore: the archive of %q already holds id %q", m.Owner, m.ID)
				}
				if _, ok := upd[m.Owner]; ok {
					continue
				}
				upd[m.Owner] = l.newest[m.Owner]
				if ab != nil {
					if k, _ := ab.msg.Cursor().Last(); string(k) > upd[m.Owner] {
						upd[m.Owner] = string(k)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			upd[m.Owner] = max(upd[m.Owner], m.ID)
		}
	}
	for o, id := range upd {
		l.newest[o] = id
	}
	return nil
}

// fresh reports whether every one of msgs (at most two) has an owner seen
// since Open and an ID above that owner's newest, and the IDs of a shared
// owner increase.
func (l *archiveLog) fresh(msgs []storage.ArchivedMessage) bool {
	for i, m := range msgs {
		n, ok := l.newest[m.Owner]
		if i == 1 && m.Owner == msgs[0].Owner {
			n, ok = msgs[0].ID, true
		}
		if !ok || m.ID <= n {
			return false
		}
	}
	return true
}

// unappliedIDs returns the IDs of the records logged, or being logged,
// and not yet applied: the database does not have them yet. The caller
// holds amu, so no record enters the queue meanwhile.
func (l *archiveLog) unappliedIDs() map[idKey]bool {
	l.mu.Lock()
	recs := slices.Clone(l.pending)
	for _, w := range l.inflight {
		recs = append(recs, w.rec)
	}
	for _, w := range l.queue {
		recs = append(recs, w.rec)
	}
	l.mu.Unlock()
	ids := make(map[idKey]bool)
	var msgs []loggedMessage
	for _, r := range recs {
		msgs, _ = decodeRecord(r.payload, msgs[:0])
		for _, m := range msgs {
			ids[idKey{m.owner, string(m.id)}] = true
		}
	}
	return ids
}

// index applies logged records until Close.
func (l *archiveLog) index() {
	defer close(l.idxDone)
	for {
		l.mu.Lock()
		for len(l.pending) == 0 {
			if l.closing && !l.writing {
				l.mu.Unlock()
				return
			}
			ch := l.changed
			l.mu.Unlock()
			<-ch
			l.mu.Lock()
		}
		// Let a batch gather, unless someone waits for it: a bbolt
		// commit costs much the same for 50 messages as for 5,000.
		if !l.hurry && !l.closing && l.pendingN < maxApply {
			timer := time.NewTimer(l.delay)
			for !l.hurry && !l.closing && l.pendingN < maxApply {
				ch := l.changed
				l.mu.Unlock()
				select {
				case <-ch:
					l.mu.Lock()
					continue
				case <-timer.C:
				}
				l.mu.Lock()
				break
			}
			timer.Stop()
		}
		l.hurry = false
		n, msgs := 0, 0
		for n < len(l.pending) && (msgs < maxApply || n == 0) {
			msgs += l.pending[n].n
			n++
		}
		recs := l.pending[:n:n]
		l.mu.Unlock()

		err := l.apply(recs)

		l.mu.Lock()
		if err != nil {
			l.err = fmt.Errorf("boltstore: indexing the archive log (the log is kept and applied at the next Open): %w", err)
			l.signal()
			l.mu.Unlock()
			return
		}
		l.applied = recs[n-1].seq
		for _, r := range recs {
			l.pendingB -= len(r.payload)
			l.pendingN -= r.n
		}
		l.pending = l.pending[n:]
		if len(l.pending) == 0 {
			l.pending = nil // let the records' memory go
		}
		l.signal()
		l.mu.Unlock()
	}
}

// close stops writes, lets the indexer apply what was logged and closes
// the file, empty when everything was applied.
func (l *archiveLog) close() error {
	l.mu.Lock()
	l.closing = true
	l.signal()
	l.mu.Unlock()
	<-l.idxDone
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.err == nil && l.applied == l.logged {
		errs = append(errs, l.empty(0), l.empty(1))
	}
	return errors.Join(append(errs, l.closeFiles())...)
}
