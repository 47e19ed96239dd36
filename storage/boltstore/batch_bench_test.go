package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyhq/parley/storage"
)

// chatLoad makes the archive appends of xmppbench's msg mode: pairs of
// users exchanging messages "xb <pair> <seq> <ns>", each archived for
// sender and recipient with the same ID.
type chatLoad struct {
	pairs int
	seq   int
	t     time.Time
	data  []byte
}

func newChatLoad(pairs int) *chatLoad {
	return &chatLoad{pairs: pairs, t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), data: make([]byte, 330)}
}

func (l *chatLoad) batch(n int) []storage.ArchivedMessage {
	out := make([]storage.ArchivedMessage, 0, 2*n)
	for range n {
		l.seq++
		l.t = l.t.Add(time.Microsecond)
		p := l.seq % l.pairs
		a, b := fmt.Sprintf("buser%d@localhost", 2*p), fmt.Sprintf("buser%d@localhost", 2*p+1)
		id := fmt.Sprintf("%012x%04x%08x", l.t.UnixMicro(), 0, l.seq*2654435761)
		body := fmt.Sprintf("xb %d %d %d", p, l.seq/l.pairs, l.t.UnixNano())
		m := storage.ArchivedMessage{ID: id, Stamp: l.t, ClientID: fmt.Sprint(l.seq), Body: body, Data: l.data}
		out = append(out, m, m)
		out[len(out)-2].Owner, out[len(out)-2].With, out[len(out)-2].Outgoing = a, b, true
		out[len(out)-1].Owner, out[len(out)-1].With = b, a
	}
	return out
}

// BenchmarkChatLoad archives xmppbench-like traffic in batches of
// several sizes; ns/op is per message (two archive copies).
func BenchmarkChatLoad(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, size := range []int{64, 512, 4096, 16384} {
			b.Run(fmt.Sprintf("sync=%v/batch=%d", sync, size), func(b *testing.B) {
				s, err := Open(filepath.Join(b.TempDir(), "a.db"), &Options{NoSync: !sync})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				l := newChatLoad(50)
				// Warm: 100k messages already archived.
				for range 100_000 / 4096 {
					if err := s.AppendMessages(context.Background(), l.batch(4096)); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.alog.caughtUp(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for n := 0; n < b.N; n += size {
					if err := s.AppendMessages(context.Background(), l.batch(size)); err != nil {
						b.Fatal(err)
					}
				}
				// Until indexed: the cost of a message includes it.
				if err := s.alog.caughtUp(context.Background()); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
