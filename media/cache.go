package media

import "sync"

// packetCache keeps the last packets of one incoming RTP stream, indexed by
// sequence number. It is the single copy that every subscriber's writer
// reads from (for forwarding and for answering NACKs), so fan-out never
// copies a packet per subscriber on the publisher's goroutine.
//
// One goroutine stores (the publisher's read loop), many read; the lock is
// held only for a copy of at most one MTU.
type packetCache struct {
	mu    sync.Mutex
	mask  uint16
	slots []cacheSlot
}

type cacheSlot struct {
	valid bool
	seq   uint16
	buf   []byte
}

// newPacketCache returns a cache of size slots; size must be a power of
// two no larger than 32768 so a slot is never ambiguous across a
// sequence-number wrap.
func newPacketCache(size int) *packetCache {
	if size&(size-1) != 0 || size <= 0 || size > 1<<15 {
		panic("media: packet cache size must be a power of two <= 32768")
	}
	return &packetCache{mask: uint16(size - 1), slots: make([]cacheSlot, size)}
}

// store copies pkt into the slot of seq. Slot buffers are reused, so a
// stream of similar-sized packets allocates only while the cache warms up.
func (c *packetCache) store(seq uint16, pkt []byte) {
	c.mu.Lock()
	s := &c.slots[seq&c.mask]
	s.buf = append(s.buf[:0], pkt...)
	s.seq = seq
	s.valid = true
	c.mu.Unlock()
}

// get copies the packet with sequence number seq into dst and returns its
// length, or false when it was never stored or has been overwritten.
func (c *packetCache) get(seq uint16, dst []byte) (int, bool) {
	c.mu.Lock()
	s := &c.slots[seq&c.mask]
	if !s.valid || s.seq != seq || len(s.buf) > len(dst) {
		c.mu.Unlock()
		return 0, false
	}
	n := copy(dst, s.buf)
	c.mu.Unlock()
	return n, true
}
