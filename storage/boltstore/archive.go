package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/storage"
	bolt "go.etcd.io/bbolt"
)

// Message history: boltstore's storage.Archive.
//
// # Layout
//
// The archive has its own top-level bucket, made by the first append (so
// files from before it need no migration), with one nested bucket per
// owner holding four buckets:
//
//	archive/<owner>/msg/<id>                          message (format below)
//	archive/<owner>/with/<lp(with)><id>               stamp of the message
//	archive/<owner>/client/<lp(with)><lp(clientID)><id>   empty
//	archive/<owner>/terms/<lp(term)><id>              block of postings
//
// lp(s) is s after its length as a uvarint, so that no JID or term is a
// prefix of another's keys and a cursor walk over one prefix sees exactly
// one conversation, one clientID or one term. IDs sort by time, so every
// index lists a conversation, a clientID or a term's messages in archive
// order, and paging is a cursor walk in either direction:
//
//   - msg answers queries over the whole archive (MAM sync).
//   - with answers queries for one conversation: the latest page of 75 is
//     a seek and 76 steps back, then one Get per message. Its value is the
//     stamp, so Start and End filter without reading the messages.
//   - client finds the message a receipt or marker refers to. A clientID
//     used twice in a conversation marks the newest message with it.
//   - terms is the full-text index: the IDs of the messages whose Body
//     holds a term, in blocks of up to blockSize IDs keyed by (term, the
//     lowest ID the block may hold), compressed (format below). Appends,
//     nearly always newer than everything, fill the last block of each
//     term; a block that overflows in the middle splits in halves.
//
// A query with Text walks the postings of its rarest term (the block
// headers carry counts) in paging order, checks each candidate against
// the other terms' blocks (binary search in a cached block), then reads
// the message for With, Start and End. The walk stops one match past the
// page, so the cost follows the page, not the archive, unless the filters
// reject most candidates. The one common case where they would, a common
// word searched in one conversation, walks the conversation instead when
// it is the shorter list, and checks each Body.
//
// Deleting a conversation removes its messages from all four buckets in
// one transaction; nothing of them stays in any index.
//
// # Terms
//
// A term is a word of Body, case-folded: a run of letters, digits and
// combining marks (unicode classes), so "Lunch?" gives "lunch"; terms
// longer than maxTermLen bytes are cut to that length in the index. Han,
// Hiragana, Katakana and Hangul are written without spaces between
// words, and no dictionary is at hand to find them, so each of their
// characters is a term of its own (unigrams, rather than bigrams: a
// one-character query then needs no scan of all bigrams that contain the
// character, and common Han characters are numerous enough that the
// rarest of a query's characters is selective). A query word of several
// such characters must match them in a row, so the candidates the
// postings give are checked against the Body, as are queries with a term
// that was cut; every other query is answered from the index alone.
// memstore applies the same rules by scanning; the conformance tests
// hold both to them.
//
// # Message format 1
//
//	format   byte (1)
//	flags    byte (flagOutgoing)
//	state    byte
//	seconds  int64, big endian (Stamp.Unix())
//	nanos    uint32, big endian
//	with     uvarint length, bytes
//	clientID uvarint length, bytes
//	body     uvarint length, bytes
//	data     the rest
//
// The owner is the bucket and the ID the key, so neither is repeated.
// State sits at a fixed offset so SetMessageState rewrites one byte of a
// copy without decoding.
//
// # Posting block format 1
//
//	format   byte (1)
//	count    uvarint
//	count times:
//	  shared uvarint: bytes in common with the previous ID (0 for the first)
//	  head   uvarint: length of the rest << 1 | 1 if the rest is packed
//	  rest   the rest of the ID; packed, two lower-case hex digits a byte
//	         (a last odd one in the high half), when it is all such digits
//
// Parley's IDs are hex and share their leading digits with IDs near them
// in time, so an ID in a block takes 11 or 12 bytes (against 45 or so for
// a key per posting). IDs in a block strictly increase, shared is always
// the longest common prefix and a rest is packed exactly when it can be,
// so a block has one encoding.

var (
	bucketArchive = []byte("archive")
	bucketMsg     = []byte("msg")
	bucketWith    = []byte("with")
	bucketClient  = []byte("client")
	bucketTerms   = []byte("terms")
)

const (
	formatMessage  = 1
	formatPostings = 1

	flagOutgoing = 1 << 0

	stampSize     = 8 + 4
	messageHeader = 3 + stampSize

	// maxTermLen bounds index keys: a 10 kB "word" (a pasted blob) would
	// otherwise become a 10 kB key.
	maxTermLen = 64

	// blockSize is the most IDs in one posting block: big enough that a
	// term's blocks are few, small enough that rewriting one per append
	// stays cheap (2-3 kB).
	blockSize = 128

	defaultMax = 100

	// fill is how full bbolt packs a page it splits. Its default, one
	// half, suits keys that arrive in random order; the archive's arrive
	// in order (msg), at the end of a conversation's run (with, client)
	// or grow a term's last block (terms), and with one half every page
	// would stay half empty (TestScale's file: 1103 MiB with one half,
	// 790 MiB with 0.9).
	fill = 0.9
)

// archiveBuckets are one owner's archive buckets.
type archiveBuckets struct {
	msg, with, client, terms *bolt.Bucket
}

// readArchive returns owner's buckets, or nil when owner has no archive.
func readArchive(tx *bolt.Tx, owner string) *archiveBuckets {
	top := tx.Bucket(bucketArchive)
	if top == nil {
		return nil
	}
	ob := top.Bucket([]byte(owner))
	if ob == nil {
		return nil
	}
	ab := &archiveBuckets{ob.Bucket(bucketMsg), ob.Bucket(bucketWith), ob.Bucket(bucketClient), ob.Bucket(bucketTerms)}
	if ab.msg == nil || ab.with == nil || ab.client == nil || ab.terms == nil {
		return nil
	}
	return ab
}

// writeArchive returns owner's buckets, creating them when missing.
func writeArchive(tx *bolt.Tx, owner string) (*archiveBuckets, error) {
	top, err := tx.CreateBucketIfNotExists(bucketArchive)
	if err != nil {
		return nil, err
	}
	ob, err := top.CreateBucketIfNotExists([]byte(owner))
	if err != nil {
		return nil, err
	}
	var bs [4]*bolt.Bucket
	for i, name := range [][]byte{bucketMsg, bucketWith, bucketClient, bucketTerms} {
		if bs[i], err = ob.CreateBucketIfNotExists(name); err != nil {
			return nil, err
		}
	}
	for _, b := range bs {
		b.FillPercent = fill
	}
	return &archiveBuckets{bs[0], bs[1], bs[2], bs[3]}, nil
}

// AppendMessages logs msgs as one record of the archive log, synced
// before it returns, and leaves them to the indexer (see archivelog.go):
// concurrent appends share one write and one fdatasync. An empty owner,
// ID or With, or an ID its owner's archive already holds (or that comes
// twice in msgs), fails the call and stores none of msgs.
func (s *Store) AppendMessages(ctx context.Context, msgs []storage.ArchivedMessage) error {
	for _, m := range msgs {
		if m.Owner == "" || m.ID == "" || m.With == "" {
			return errEmpty
		}
	}
	if err := s.check(ctx); err != nil || len(msgs) == 0 {
		return err
	}
	return s.alog.append(ctx, msgs)
}

// ownerAppend is one owner's part of an indexer transaction, prepared
// before it so the commit lock is held for bbolt work only.
type ownerAppend struct {
	owner string
	msgs  []encodedMessage
	terms []posting // sorted by term
}

type encodedMessage struct {
	id, val, withKey, withVal, clientKey []byte // clientKey nil: no ClientID
}

// posting lists the IDs, sorted, of the messages with a term.
type posting struct {
	term string
	ids  []string
}

// prepareIndex groups logged messages by owner, with each owner's
// postings grouped by term across the whole batch, so a term gets one
// block update per transaction. It allocates little per message (the
// indexer's garbage was a tenth of the server's CPU at full load): keys
// are cut from shared chunks, a message's ID string and terms serve both
// of its copies, and the terms of an ASCII body are substrings of it.
func prepareIndex(msgs []loggedMessage) ([]*ownerAppend, error) {
	var (
		byOwner  = make(map[string]*ownerAppend)
		order    []*ownerAppend
		postings = make(map[*ownerAppend]map[string]int) // index in lists
		lists    []posting
		lastBody []byte
		lastID   []byte
		id       string
		terms    []string
		keys     chunks
	)
	for _, m := range msgs {
		oa := byOwner[m.owner]
		if oa == nil {
			oa = &ownerAppend{owner: m.owner}
			byOwner[m.owner] = oa
			order = append(order, oa)
			postings[oa] = make(map[string]int)
		}
		ot := postings[oa]
		d := decoder{b: m.val[messageHeader:]}
		with, clientID, body := d.bytes(), d.bytes(), d.bytes()
		if d.err || len(with) == 0 {
			return nil, errCorrupt
		}
		em := encodedMessage{id: m.id, val: m.val, withVal: m.val[3:messageHeader]}
		lw := uvarintSize(uint64(len(with))) + len(with)
		em.withKey = keys.take(lw + len(m.id))
		binary.PutUvarint(em.withKey, uint64(len(with)))
		copy(em.withKey[lw-len(with):], with)
		copy(em.withKey[lw:], m.id)
		if len(clientID) > 0 {
			lc := uvarintSize(uint64(len(clientID))) + len(clientID)
			em.clientKey = keys.take(lw + lc + len(m.id))
			copy(em.clientKey, em.withKey[:lw])
			binary.PutUvarint(em.clientKey[lw:], uint64(len(clientID)))
			copy(em.clientKey[lw+lc-len(clientID):], clientID)
			copy(em.clientKey[lw+lc:], m.id)
		}
		oa.msgs = append(oa.msgs, em)
		// The copies of a message in both archives come together.
		if lastID == nil || !bytes.Equal(m.id, lastID) {
			id, lastID = string(m.id), m.id
		}
		if lastBody == nil || !bytes.Equal(body, lastBody) {
			terms, lastBody = appendIndexTerms(terms[:0], string(body)), body
		}
		for _, t := range terms {
			i, ok := ot[t]
			if !ok {
				i = len(lists)
				ot[t] = i
				lists = append(lists, posting{term: t})
			}
			lists[i].ids = append(lists[i].ids, id)
		}
	}
	for _, oa := range order {
		ot := postings[oa]
		oa.terms = make([]posting, 0, len(ot))
		for _, i := range ot {
			p := lists[i]
			if !slices.IsSorted(p.ids) {
				slices.Sort(p.ids)
			}
			p.ids = slices.Compact(p.ids)
			oa.terms = append(oa.terms, p)
		}
		slices.SortFunc(oa.terms, func(a, b posting) int { return strings.Compare(a.term, b.term) })
	}
	return order, nil
}

// chunks hands out byte slices cut from shared blocks; a slice stays
// valid (bbolt keeps the keys it is given until the commit).
type chunks struct{ buf []byte }

func (c *chunks) clone(b []byte) []byte { k := c.take(len(b)); copy(k, b); return k }

func (c *chunks) take(n int) []byte {
	if n > len(c.buf) {
		c.buf = make([]byte, max(n, 64<<10))
	}
	b := c.buf[:n:n]
	c.buf = c.buf[n:]
	return b
}

// present reports the messages of batch already in their owner's archive.
// IDs nearly always come in order, so one look at the owner's newest ID
// usually settles all of an owner's messages.
func present(tx *bolt.Tx, batch []*ownerAppend) map[[2]string]bool {
	var dup map[[2]string]bool
	for _, oa := range batch {
		ab := readArchive(tx, oa.owner)
		if ab == nil {
			continue
		}
		last, _ := ab.msg.Cursor().Last()
		for _, m := range oa.msgs {
			if bytes.Compare(m.id, last) > 0 {
				continue
			}
			if ab.msg.Get(m.id) != nil {
				if dup == nil {
					dup = make(map[[2]string]bool)
				}
				dup[[2]string{oa.owner, string(m.id)}] = true
			}
		}
	}
	return dup
}

func (oa *ownerAppend) write(tx *bolt.Tx) error {
	ab, err := writeArchive(tx, oa.owner)
	if err != nil {
		return err
	}
	for _, m := range oa.msgs {
		if err := ab.msg.Put(m.id, m.val); err != nil {
			return err
		}
		if err := ab.with.Put(m.withKey, m.withVal); err != nil {
			return err
		}
		if m.clientKey != nil {
			if err := ab.client.Put(m.clientKey, nil); err != nil {
				return err
			}
		}
	}
	var bl block
	for _, p := range oa.terms {
		if err := addPostings(ab.terms, p.term, p.ids, &bl); err != nil {
			return err
		}
	}
	return nil
}

// archiveRead waits until the archive's buckets hold every append that
// has returned (see archivelog.go).
func (s *Store) archiveRead(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.alog.caughtUp(ctx)
}

// QueryMessages returns the messages q selects, in ID order. It reads in
// one read-only transaction, in parallel with other reads and writes.
func (s *Store) QueryMessages(ctx context.Context, owner string, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
	sc := newScan(ctx, owner, q)
	var (
		out      []storage.ArchivedMessage
		complete bool
	)
	if err := s.archiveRead(ctx); err != nil {
		return nil, false, err
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ab := readArchive(tx, owner)
		for _, b := range []struct{ name, id string }{{"AfterID", q.AfterID}, {"BeforeID", q.BeforeID}} {
			if b.id != "" && (ab == nil || ab.msg.Get([]byte(b.id)) == nil) {
				return fmt.Errorf("boltstore: %s %q: %w", b.name, b.id, storage.ErrNotFound)
			}
		}
		if ab == nil {
			out, complete = nil, true
			return nil
		}
		var err error
		out, complete, err = sc.run(ab)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return out, complete, nil
}

// scan is one query: where its candidates come from and how they are
// checked.
type scan struct {
	ctx           context.Context
	owner         string
	q             storage.ArchiveQuery
	after, before []byte // nil: unbounded
	limit         int
	words         [][]string // of Text, as tokens
	terms         []string   // index terms of words, without repeats
	verify        bool       // the index alone cannot decide Text
	with          []byte
}

func newScan(ctx context.Context, owner string, q storage.ArchiveQuery) *scan {
	sc := &scan{ctx: ctx, owner: owner, q: q, limit: q.Max, words: storage.QueryWords(q.Text)}
	if sc.limit <= 0 {
		sc.limit = defaultMax
	}
	if q.AfterID != "" {
		sc.after = []byte(q.AfterID)
	}
	if q.BeforeID != "" {
		sc.before = []byte(q.BeforeID)
	}
	if q.With != "" {
		sc.with = []byte(q.With)
	}
	for _, w := range sc.words {
		sc.verify = sc.verify || len(w) > 1
		for _, t := range w {
			sc.verify = sc.verify || len(t) > maxTermLen
			sc.terms = append(sc.terms, indexTerm(t))
		}
	}
	slices.Sort(sc.terms)
	sc.terms = slices.Compact(sc.terms)
	return sc
}

// source yields candidate IDs in paging order within (after, before),
// with the message when it has it at hand; nil at the end.
type source interface {
	next() (id, msg []byte, err error)
}

func (sc *scan) run(ab *archiveBuckets) ([]storage.ArchivedMessage, bool, error) {
	if sc.after != nil && sc.before != nil && bytes.Compare(sc.after, sc.before) >= 0 {
		return nil, true, nil
	}
	var src source
	switch {
	case len(sc.terms) > 0:
		ts, rarest, err := sc.termSource(ab.terms)
		if err != nil || ts == nil {
			return nil, err == nil, err
		}
		src = ts
		// Searching one conversation for a common word: reading the
		// conversation and checking each Body costs less than walking
		// the word's postings and dropping other conversations.
		if sc.with != nil {
			p := appendString(nil, sc.q.With)
			if countPrefix(ab.with.Cursor(), p, rarest) < rarest {
				sc.verify = true
				src = &cursorSource{c: ab.with.Cursor(), prefix: p, sc: sc, stamps: true}
			}
		}
	case sc.with != nil:
		src = &cursorSource{c: ab.with.Cursor(), prefix: appendString(nil, sc.q.With), sc: sc, stamps: true}
	default:
		src = &cursorSource{c: ab.msg.Cursor(), sc: sc}
	}

	var page []storage.ArchivedMessage
	for n := 1; ; n++ {
		// A scan that rejects most of what it reads can run long.
		if n%1024 == 0 {
			if err := sc.ctx.Err(); err != nil {
				return nil, false, err
			}
		}
		id, v, err := src.next()
		if err != nil {
			return nil, false, err
		}
		if id == nil {
			break
		}
		if v == nil {
			if v = ab.msg.Get(id); v == nil {
				return nil, false, corrupt(errCorrupt, "archive index", []byte(sc.owner), id)
			}
		}
		ok, err := sc.match(v)
		if err != nil {
			return nil, false, corrupt(err, "archive", []byte(sc.owner), id)
		}
		if !ok {
			continue
		}
		if len(page) == sc.limit {
			// A match past the page: the page does not end the selection.
			return sc.order(page), false, nil
		}
		m, err := decodeMessage(sc.owner, id, v)
		if err != nil {
			return nil, false, corrupt(err, "archive", []byte(sc.owner), id)
		}
		page = append(page, m)
	}
	return sc.order(page), true, nil
}

func (sc *scan) order(page []storage.ArchivedMessage) []storage.ArchivedMessage {
	if sc.q.Last {
		slices.Reverse(page)
	}
	return page
}

// match applies With, Start, End and, when the index could not, Text.
func (sc *scan) match(v []byte) (bool, error) {
	if len(v) < messageHeader || v[0] != formatMessage {
		return false, errCorrupt
	}
	if !sc.inTime(v[3:messageHeader]) {
		return false, nil
	}
	if sc.with == nil && !sc.verify {
		return true, nil
	}
	d := decoder{b: v[messageHeader:]}
	with := d.bytes()
	d.bytes() // clientID
	body := d.bytes()
	if d.err {
		return false, errCorrupt
	}
	if sc.with != nil && !bytes.Equal(with, sc.with) {
		return false, nil
	}
	if sc.verify {
		toks := storage.Tokenize(string(body))
		for _, w := range sc.words {
			if !storage.ContainsWord(toks, w) {
				return false, nil
			}
		}
	}
	return true, nil
}

// inTime reports whether an encoded stamp lies within Start and End.
func (sc *scan) inTime(b []byte) bool {
	if sc.q.Start.IsZero() && sc.q.End.IsZero() {
		return true
	}
	t := readStamp(b)
	return !(!sc.q.Start.IsZero() && t.Before(sc.q.Start) || !sc.q.End.IsZero() && t.After(sc.q.End))
}

// cursorSource walks the keys of a bucket under prefix: msg (no prefix,
// the value is the message) or with (the value is the stamp, checked
// here so messages outside Start and End are never read).
type cursorSource struct {
	c       *bolt.Cursor
	prefix  []byte
	sc      *scan
	stamps  bool
	started bool
}

func (cs *cursorSource) next() ([]byte, []byte, error) {
	for {
		k, v := cs.step()
		if k == nil || !bytes.HasPrefix(k, cs.prefix) {
			return nil, nil, nil
		}
		id := k[len(cs.prefix):]
		if cs.sc.q.Last && cs.sc.after != nil && bytes.Compare(id, cs.sc.after) <= 0 ||
			!cs.sc.q.Last && cs.sc.before != nil && bytes.Compare(id, cs.sc.before) >= 0 {
			return nil, nil, nil
		}
		if !cs.stamps {
			return id, v, nil
		}
		if len(v) != stampSize {
			return nil, nil, corrupt(errCorrupt, "archive index", []byte(cs.sc.owner), k)
		}
		if cs.sc.inTime(v) {
			return id, nil, nil
		}
	}
}

func (cs *cursorSource) step() ([]byte, []byte) {
	if cs.started {
		if cs.sc.q.Last {
			return cs.c.Prev()
		}
		return cs.c.Next()
	}
	cs.started = true
	if cs.sc.q.Last {
		if cs.sc.before != nil {
			return seekBefore(cs.c, join(cs.prefix, cs.sc.before))
		}
		return seekBefore(cs.c, prefixEnd(cs.prefix))
	}
	if cs.sc.after != nil {
		return seekAfter(cs.c, join(cs.prefix, cs.sc.after))
	}
	if len(cs.prefix) == 0 {
		return cs.c.First()
	}
	return cs.c.Seek(cs.prefix)
}

// termSource walks the postings of the query's rarest term and keeps the
// IDs all its other terms have too. It is nil when some term has no
// postings: nothing can match.
type termSource struct {
	sc     *scan
	walk   postingWalk
	others []*postingSet
}

// countPrefix counts the keys under p, stopping at most.
func countPrefix(c *bolt.Cursor, p []byte, most int) int {
	n := 0
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && n < most; k, _ = c.Next() {
		n++
	}
	return n
}

// termSource also returns the number of postings of the rarest term.
func (sc *scan) termSource(tb *bolt.Bucket) (*termSource, int, error) {
	type counted struct {
		p []byte
		n int
	}
	cs := make([]counted, len(sc.terms))
	for i, t := range sc.terms {
		p := appendString(nil, t)
		n, err := postingCount(tb.Cursor(), p)
		if err != nil {
			return nil, 0, corrupt(err, "archive terms", []byte(sc.owner), p)
		}
		if n == 0 {
			return nil, 0, nil
		}
		cs[i] = counted{p, n}
	}
	slices.SortFunc(cs, func(a, b counted) int { return cmp.Compare(a.n, b.n) })
	ts := &termSource{sc: sc, walk: postingWalk{c: tb.Cursor(), p: cs[0].p, back: sc.q.Last}}
	for _, c := range cs[1:] {
		ts.others = append(ts.others, &postingSet{c: tb.Cursor(), p: c.p})
	}
	if err := ts.walk.start(sc.after, sc.before); err != nil {
		return nil, 0, err
	}
	return ts, cs[0].n, nil
}

func (ts *termSource) next() ([]byte, []byte, error) {
next:
	for {
		id, err := ts.walk.next()
		if id == nil || err != nil {
			return nil, nil, err
		}
		sc := ts.sc
		if sc.q.Last && sc.after != nil && bytes.Compare(id, sc.after) <= 0 ||
			!sc.q.Last && sc.before != nil && bytes.Compare(id, sc.before) >= 0 {
			return nil, nil, nil
		}
		for _, o := range ts.others {
			ok, err := o.has(id)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				continue next
			}
		}
		return id, nil, nil
	}
}

// postingWalk steps through one term's postings, forwards or back.
type postingWalk struct {
	c    *bolt.Cursor
	p    []byte // lp(term)
	back bool
	bl   block
	i    int // next index in bl
	done bool
}

// start positions the walk on the first ID past after (forwards) or
// before before (back).
func (w *postingWalk) start(after, before []byte) error {
	var k, v []byte
	switch {
	case !w.back && after != nil:
		k, v = blockFor(w.c, w.p, after)
	case !w.back:
		k, v = w.c.Seek(w.p)
	case before != nil:
		k, v = blockFor(w.c, w.p, before)
	default:
		k, v = seekBefore(w.c, prefixEnd(w.p))
	}
	if k == nil || !bytes.HasPrefix(k, w.p) {
		w.done = true
		return nil
	}
	if err := w.bl.decode(v); err != nil {
		return err
	}
	switch {
	case !w.back && after != nil:
		i, found := w.bl.search(after)
		if found {
			i++
		}
		w.i = i
	case !w.back:
		w.i = 0
	case before != nil:
		i, _ := w.bl.search(before)
		w.i = i - 1
	default:
		w.i = w.bl.len() - 1
	}
	return nil
}

// next returns the next ID, valid until the following call, or nil.
func (w *postingWalk) next() ([]byte, error) {
	for !w.done && (w.i < 0 || w.i >= w.bl.len()) {
		var k, v []byte
		if w.back {
			k, v = w.c.Prev()
		} else {
			k, v = w.c.Next()
		}
		if k == nil || !bytes.HasPrefix(k, w.p) {
			w.done = true
			break
		}
		if err := w.bl.decode(v); err != nil {
			return nil, err
		}
		if w.back {
			w.i = w.bl.len() - 1
		} else {
			w.i = 0
		}
	}
	if w.done {
		return nil, nil
	}
	id := w.bl.id(w.i)
	if w.back {
		w.i--
	} else {
		w.i++
	}
	return id, nil
}

// postingSet answers whether a term's postings hold an ID, keeping the
// last block it read: the candidates of one query come in order, so most
// fall in the block of the one before.
type postingSet struct {
	c      *bolt.Cursor
	p      []byte
	bl     block
	lo, hi []byte // the cached block holds the IDs in [lo, hi); nil: unbounded
	cached bool
}

func (s *postingSet) has(id []byte) (bool, error) {
	if !s.cached || s.lo != nil && bytes.Compare(id, s.lo) < 0 || s.hi != nil && bytes.Compare(id, s.hi) >= 0 {
		k, v := blockFor(s.c, s.p, id)
		if k == nil {
			return false, nil
		}
		if err := s.bl.decode(v); err != nil {
			return false, err
		}
		s.cached = true
		// A block holds IDs from its key to the next block's key; the
		// first block also stands for everything below it.
		s.lo = k[len(s.p):]
		if pk, _ := s.c.Prev(); pk == nil || !bytes.HasPrefix(pk, s.p) {
			s.lo = nil
			if pk == nil {
				s.c.First()
			} else {
				s.c.Next()
			}
		} else {
			s.c.Next()
		}
		s.hi = nil
		if nk, _ := s.c.Next(); nk != nil && bytes.HasPrefix(nk, s.p) {
			s.hi = nk[len(s.p):]
		}
	}
	_, found := s.bl.search(id)
	return found, nil
}

// postingCount sums the counts in the headers of p's blocks.
func postingCount(c *bolt.Cursor, p []byte) (int, error) {
	n := 0
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if len(v) < 2 || v[0] != formatPostings {
			return 0, errCorrupt
		}
		x, m := binary.Uvarint(v[1:])
		if m <= 0 {
			return 0, errCorrupt
		}
		n += int(x)
	}
	return n, nil
}

// SetMessageState raises the State of owner's newest message with
// clientID exchanged with with, or returns storage.ErrNotFound. A
// message without a ClientID is never found. When the state is already
// as high, it returns nil without writing: receipts and markers often
// repeat a state, and a read costs no fsync.
func (s *Store) SetMessageState(ctx context.Context, owner, with, clientID string, state uint8) error {
	if clientID == "" {
		return s.notFound(ctx)
	}
	if err := s.archiveRead(ctx); err != nil {
		return err
	}
	var raise bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		_, v, err := findByClient(tx, owner, with, clientID)
		raise = err == nil && v[2] < state
		return err
	})
	if err != nil || !raise {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		id, v, err := findByClient(tx, owner, with, clientID)
		if err != nil || v[2] >= state {
			return err
		}
		nv := bytes.Clone(v)
		nv[2] = state
		return readArchive(tx, owner).msg.Put(bytes.Clone(id), nv)
	})
}

func (s *Store) notFound(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return storage.ErrNotFound
}

// findByClient returns the ID and value of owner's newest message with
// clientID exchanged with with, or storage.ErrNotFound.
func findByClient(tx *bolt.Tx, owner, with, clientID string) (id, v []byte, err error) {
	ab := readArchive(tx, owner)
	if ab == nil {
		return nil, nil, storage.ErrNotFound
	}
	p := appendString(appendString(nil, with), clientID)
	k, _ := seekBefore(ab.client.Cursor(), prefixEnd(p))
	if k == nil || !bytes.HasPrefix(k, p) {
		return nil, nil, storage.ErrNotFound
	}
	id = k[len(p):]
	if v = ab.msg.Get(id); len(v) < messageHeader || v[0] != formatMessage {
		return nil, nil, corrupt(errCorrupt, "archive", []byte(owner), id)
	}
	return id, v, nil
}

// DeleteConversation removes owner's messages with with, and their
// entries in every index, in one transaction.
func (s *Store) DeleteConversation(ctx context.Context, owner, with string) error {
	if err := s.archiveRead(ctx); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		ab := readArchive(tx, owner)
		if ab == nil {
			return nil
		}
		p := appendString(nil, with)
		var keys [][]byte
		c := ab.with.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		terms := make(map[string][]string)
		for _, k := range keys {
			id := k[len(p):]
			if v := ab.msg.Get(id); v != nil {
				if len(v) < messageHeader {
					return corrupt(errCorrupt, "archive", []byte(owner), id)
				}
				d := decoder{b: v[messageHeader:]}
				d.bytes() // with
				clientID := d.bytes()
				body := d.bytes()
				if d.err {
					return corrupt(errCorrupt, "archive", []byte(owner), id)
				}
				if len(clientID) > 0 {
					if err := ab.client.Delete(join(appendString(bytes.Clone(p), string(clientID)), id)); err != nil {
						return err
					}
				}
				// Keys come in ID order, so each list is sorted.
				for _, t := range indexTerms(string(body)) {
					terms[t] = append(terms[t], string(id))
				}
				if err := ab.msg.Delete(id); err != nil {
					return err
				}
			}
			if err := ab.with.Delete(k); err != nil {
				return err
			}
		}
		for _, t := range slices.Sorted(maps.Keys(terms)) {
			if err := removePostings(ab.terms, t, terms[t]); err != nil {
				return err
			}
		}
		return nil
	})
}

// addPostings adds ids (sorted, none there yet) to the postings of term.
// bl is scratch space, reused across calls.
func addPostings(tb *bolt.Bucket, term string, ids []string, bl *block) error {
	p := appendString(bl.p[:0], term)
	bl.p = p
	if bl.cb != tb {
		bl.c, bl.cb = tb.Cursor(), tb
	}
	// One cursor for the bucket: every use starts with a Seek, which
	// walks from the root again, so the Puts in between do not confuse
	// it, and its stack is not allocated anew for each term.
	c := bl.c
	for len(ids) > 0 {
		bl.seek = append(append(bl.seek[:0], p...), ids[0]...)
		k, v := blockAt(c, p, bl.seek)
		var (
			oldKey  []byte
			hasNext bool
			next    string // IDs from here on belong to the next block
		)
		bl.reset()
		if k != nil {
			oldKey = bl.keys.clone(k)
			if err := bl.decode(v); err != nil {
				return corrupt(err, "archive terms", nil, k)
			}
			if nk, _ := c.Next(); nk != nil && bytes.HasPrefix(nk, p) {
				hasNext, next = true, string(nk[len(p):])
			}
		}
		n := len(ids)
		if hasNext {
			n = sort.SearchStrings(ids, next)
		}
		add := ids[:n]
		ids = ids[n:]

		if have := bl.len(); have > 0 && have+len(add) <= blockSize && add[0] > string(bl.id(have-1)) {
			// The common case, newer IDs that fit: extend the encoded
			// block instead of decoding it to strings and back.
			_, hn := binary.Uvarint(v[1:])
			val := bl.keys.take(len(v) + blockBound(add))[:0]
			val = append(val, formatPostings)
			val = binary.AppendUvarint(val, uint64(have+len(add)))
			val = append(val, v[1+hn:]...)
			val = appendEntries(val, string(bl.id(have-1)), add)
			if err := tb.Put(oldKey, val); err != nil {
				return err
			}
			continue
		}
		old := bl.strings()

		var blocks [][]string
		if len(old) == 0 || add[0] > old[len(old)-1] {
			// Appending: fill the block, then start new ones. A full
			// block stays as it is.
			room := max(0, blockSize-len(old))
			if room > 0 || len(old) == 0 {
				fill := add[:min(room, len(add))]
				blocks = append(blocks, append(old, fill...))
				add = add[len(fill):]
			} else {
				oldKey = nil // nothing to rewrite
			}
			for len(add) > 0 {
				blocks = append(blocks, add[:min(blockSize, len(add))])
				add = add[min(blockSize, len(add)):]
			}
		} else {
			merged := mergeIDs(old, add)
			parts := (len(merged) + blockSize - 1) / blockSize
			for i := range parts {
				blocks = append(blocks, merged[i*len(merged)/parts:(i+1)*len(merged)/parts])
			}
		}
		if oldKey != nil && !bytes.Equal(oldKey[len(p):], []byte(blocks[0][0])) {
			// Only when the new IDs sort before every block of the term.
			if err := tb.Delete(oldKey); err != nil {
				return err
			}
		}
		for _, b := range blocks {
			if len(b) == 0 {
				continue
			}
			k := bl.keys.take(len(p) + len(b[0]))
			copy(k[copy(k, p):], b[0])
			if err := tb.Put(k, appendBlock(bl.keys.take(blockBound(b))[:0], b)); err != nil {
				return err
			}
		}
	}
	return nil
}

// removePostings removes ids (sorted) from the postings of term.
func removePostings(tb *bolt.Bucket, term string, ids []string) error {
	p := appendString(nil, term)
	var bl block
	for len(ids) > 0 {
		c := tb.Cursor()
		k, v := blockFor(c, p, []byte(ids[0]))
		if k == nil {
			return nil
		}
		k = bytes.Clone(k)
		if err := bl.decode(v); err != nil {
			return corrupt(err, "archive terms", nil, k)
		}
		n := len(ids)
		if nk, _ := c.Next(); nk != nil && bytes.HasPrefix(nk, p) {
			n = sort.SearchStrings(ids, string(nk[len(p):]))
		}
		gone := ids[:n]
		ids = ids[n:]
		kept := slices.DeleteFunc(bl.strings(), func(id string) bool {
			_, found := slices.BinarySearch(gone, id)
			return found
		})
		var err error
		switch {
		case len(kept) == 0:
			err = tb.Delete(k)
		case len(kept) < bl.len():
			// The key stays: it need only be no higher than the block's IDs.
			err = tb.Put(k, appendBlock(nil, kept))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func mergeIDs(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// blockFor returns the block of p's postings that holds, or would hold,
// id: the last whose key is at most id, or the first when id sorts before
// them all; nil when the term has none. c is left on the block.
func blockFor(c *bolt.Cursor, p, id []byte) ([]byte, []byte) {
	return blockAt(c, p, join(p, id))
}

// blockAt is blockFor with the key of the ID (p, then the ID) at hand.
func blockAt(c *bolt.Cursor, p, key []byte) ([]byte, []byte) {
	k, v := c.Seek(key)
	if k != nil && bytes.Equal(k, key) {
		return k, v
	}
	var pk, pv []byte
	if k == nil {
		pk, pv = c.Last()
	} else {
		pk, pv = c.Prev()
	}
	if pk != nil && bytes.HasPrefix(pk, p) {
		return pk, pv
	}
	if pk == nil {
		k, v = c.First()
	} else {
		k, v = c.Next()
	}
	if k != nil && bytes.HasPrefix(k, p) {
		return k, v
	}
	return nil, nil
}

// seekAfter moves c to the first key after key.
func seekAfter(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	k, v := c.Seek(key)
	if k != nil && bytes.Equal(k, key) {
		return c.Next()
	}
	return k, v
}

// seekBefore moves c to the last key before key; nil key means the end.
func seekBefore(c *bolt.Cursor, key []byte) ([]byte, []byte) {
	if key == nil {
		return c.Last()
	}
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// prefixEnd returns the least key above every key that starts with p,
// or nil when there is none.
func prefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

func join(a, b []byte) []byte {
	return append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
}

func appendStamp(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(buf, uint32(t.Nanosecond()))
}

// readStamp reads what appendStamp wrote; b holds stampSize bytes.
func readStamp(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint32(b[8:]))).UTC()
}

func encodeMessage(m storage.ArchivedMessage) []byte {
	return appendMessage(make([]byte, 0, messageSize(m)), m)
}

// messageSize is the size of m's encoding.
func messageSize(m storage.ArchivedMessage) int {
	return messageHeader + strSize(m.With) + strSize(m.ClientID) + strSize(m.Body) + len(m.Data)
}

// appendMessage appends m's encoding (message format 1) to buf.
func appendMessage(buf []byte, m storage.ArchivedMessage) []byte {
	var flags byte
	if m.Outgoing {
		flags = flagOutgoing
	}
	buf = append(buf, formatMessage, flags, m.State)
	buf = appendStamp(buf, m.Stamp)
	buf = appendString(buf, m.With)
	buf = appendString(buf, m.ClientID)
	buf = appendString(buf, m.Body)
	return append(buf, m.Data...)
}

// decodeMessage is the inverse of encodeMessage; it copies out of b.
func decodeMessage(owner string, id, b []byte) (storage.ArchivedMessage, error) {
	if len(b) < messageHeader || b[0] != formatMessage || b[1]&^flagOutgoing != 0 ||
		binary.BigEndian.Uint32(b[11:]) >= 1e9 {
		return storage.ArchivedMessage{}, errCorrupt
	}
	d := decoder{b: b[messageHeader:]}
	m := storage.ArchivedMessage{
		Owner:    owner,
		ID:       string(id),
		Stamp:    readStamp(b[3:]),
		Outgoing: b[1]&flagOutgoing != 0,
		State:    b[2],
		With:     d.string(),
		ClientID: d.string(),
		Body:     d.string(),
	}
	if d.err {
		return storage.ArchivedMessage{}, errCorrupt
	}
	m.Data = append([]byte{}, d.b...)
	return m, nil
}

// bytes is string without the copy: the result aliases d's input.
func (d *decoder) bytes() []byte {
	return d.take(d.uvarint())
}

// take returns the next n bytes, aliasing d's input.
func (d *decoder) take(n uint64) []byte {
	if d.err || n > uint64(len(d.b)) {
		d.err = true
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// blockBound is at least the size of appendBlock(nil, ids), and of the
// entries of ids appended to a block with the header's count grown.
func blockBound(ids []string) int {
	n := 1 + 2*binary.MaxVarintLen32
	for _, id := range ids {
		n += 2*binary.MaxVarintLen32 + len(id)
	}
	return n
}

func appendBlock(buf []byte, ids []string) []byte {
	buf = append(buf, formatPostings)
	buf = binary.AppendUvarint(buf, uint64(len(ids)))
	return appendEntries(buf, "", ids)
}

// appendEntries encodes ids, each after the one before, the first after
// prev.
func appendEntries(buf []byte, prev string, ids []string) []byte {
	for _, id := range ids {
		n := 0
		for n < len(prev) && n < len(id) && prev[n] == id[n] {
			n++
		}
		buf = binary.AppendUvarint(buf, uint64(n))
		buf = appendRest(buf, id[n:])
		prev = id
	}
	return buf
}

func appendRest(buf []byte, rest string) []byte {
	if !isHex(rest) {
		buf = binary.AppendUvarint(buf, uint64(len(rest))<<1)
		return append(buf, rest...)
	}
	buf = binary.AppendUvarint(buf, uint64(len(rest))<<1|1)
	for i := 0; i < len(rest); i += 2 {
		b := unhex(rest[i]) << 4
		if i+1 < len(rest) {
			b |= unhex(rest[i+1])
		}
		buf = append(buf, b)
	}
	return buf
}

// isHex reports whether s is one or more lower-case hex digits.
func isHex[S string | []byte](s S) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return len(s) > 0
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

const hexDigits = "0123456789abcdef"

// block is a decoded posting block. Its buffers are reused from one
// decode to the next.
type block struct {
	buf  []byte // the IDs end to end
	ends []int  // where each ends in buf

	// For addPostings: scratch buffers, and keys and values handed to
	// bbolt (which keeps them until the commit).
	p, seek []byte
	keys    chunks
	c       *bolt.Cursor // on cb
	cb      *bolt.Bucket
}

// decode reads a block, checking that IDs strictly increase and that
// each is stored in the one encoding appendBlock writes.
func (bl *block) decode(v []byte) error {
	bl.reset()
	if len(v) < 1 || v[0] != formatPostings {
		return errCorrupt
	}
	d := decoder{b: v[1:]}
	n := d.uvarint()
	// Each ID takes at least three bytes, which bounds a corrupt count.
	if d.err || n > uint64(len(d.b))/3 {
		return errCorrupt
	}
	start := 0 // of the previous ID in buf
	for range n {
		shared := d.uvarint()
		head := d.uvarint()
		prev := bl.buf[start:]
		if d.err || shared > uint64(len(prev)) || head < 2 {
			return errCorrupt
		}
		start = len(bl.buf)
		bl.buf = append(bl.buf, prev[:shared]...)
		size := head >> 1
		if head&1 == 0 {
			rest := d.take(size)
			if d.err || isHex(rest) {
				return errCorrupt
			}
			bl.buf = append(bl.buf, rest...)
		} else {
			packed := d.take((size + 1) / 2)
			if d.err || size%2 == 1 && packed[len(packed)-1]&0x0f != 0 {
				return errCorrupt
			}
			for i := range size {
				bl.buf = append(bl.buf, hexDigits[packed[i/2]>>(4-4*(i%2))&0x0f])
			}
		}
		if id := bl.buf[start:]; shared < uint64(len(prev)) && id[shared] <= prev[shared] {
			return errCorrupt
		}
		bl.ends = append(bl.ends, len(bl.buf))
	}
	if len(d.b) != 0 {
		return errCorrupt
	}
	return nil
}

func (bl *block) reset() { bl.buf, bl.ends = bl.buf[:0], bl.ends[:0] }

func (bl *block) len() int { return len(bl.ends) }

func (bl *block) id(i int) []byte {
	start := 0
	if i > 0 {
		start = bl.ends[i-1]
	}
	return bl.buf[start:bl.ends[i]]
}

// search returns where id is, or would be, in the block.
func (bl *block) search(id []byte) (int, bool) {
	i := sort.Search(bl.len(), func(i int) bool { return bytes.Compare(bl.id(i), id) >= 0 })
	return i, i < bl.len() && bytes.Equal(bl.id(i), id)
}

func (bl *block) strings() []string {
	out := make([]string, bl.len())
	for i := range out {
		out[i] = string(bl.id(i))
	}
	return out
}

// indexTerms returns the distinct index terms of body, sorted.
func indexTerms(body string) []string { return appendIndexTerms(nil, body) }

// appendIndexTerms appends the distinct index terms of body, sorted, to
// terms, which must be empty (its array is reused).
func appendIndexTerms(terms []string, body string) []string {
	if t, ok := appendASCIITerms(terms, body); ok {
		return t
	}
	for _, t := range storage.Tokenize(body) {
		terms = append(terms, indexTerm(t.Term))
	}
	slices.Sort(terms)
	return slices.Compact(terms)
}

// appendASCIITerms is storage.Tokenize and indexTerm for a body of ASCII
// only, the common case, without their allocations: a word is a run of
// letters and digits, lower-cased, and the terms are substrings of body
// (of one lower-cased copy when it has capitals). ok is false when body
// is not all ASCII.
func appendASCIITerms(terms []string, body string) ([]string, bool) {
	upper := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c >= utf8.RuneSelf {
			return terms, false
		}
		upper = upper || 'A' <= c && c <= 'Z'
	}
	if upper {
		body = strings.ToLower(body)
	}
	start := -1
	for i := 0; i <= len(body); i++ {
		if i < len(body) {
			if c := body[i]; 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
				if start < 0 {
					start = i
				}
				continue
			}
		}
		if start >= 0 {
			terms = append(terms, body[start:min(i, start+maxTermLen)])
			start = -1
		}
	}
	if len(terms) > 1 {
		slices.Sort(terms)
		terms = slices.Compact(terms)
	}
	return terms, true
}

// indexTerm cuts t to at most maxTermLen bytes, at a rune boundary.
func indexTerm(t string) string {
	if len(t) <= maxTermLen {
		return t
	}
	i := maxTermLen
	for i > 0 && !utf8.RuneStart(t[i]) {
		i--
	}
	return t[:i]
}
