package s2s

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/xmppsrv"
)

// BenchmarkS2SMessages measures chat messages carried from one federation
// to another over an established, dialback-authenticated STARTTLS stream
// on loopback: Send to Local.Deliver on the other side.
func BenchmarkS2SMessages(b *testing.B) {
	a, c := pair(b, nil, false, func(c *Config) { c.ReadRate = -1 }) // the server, not the flood limit
	c.local.got = make(chan *xmppsrv.Element, 4096)
	a.srv.Send(message("alice@a.test/x", "bob@b.test", "warm-up"))
	select {
	case <-c.local.got:
	case <-time.After(10 * time.Second):
		b.Fatal("no stream")
	}
	msgs := make([]*xmppsrv.Element, 1000)
	for i := range msgs {
		msgs[i] = message("alice@a.test/x", "bob@b.test", fmt.Sprintf("message %d with a body of ordinary length", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.srv.Send(msgs[i%len(msgs)])
		if i%1000 == 999 {
			for range 1000 {
				<-c.local.got
			}
		}
	}
	for range b.N % 1000 {
		<-c.local.got
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
