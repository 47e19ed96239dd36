package xmppsrv

import (
	"os"
	"sync"
	"time"
)

// frameIn is the read side of a net.Conn whose input arrives in whole
// frames from another goroutine: WebSocket messages (RFC 7395) and the
// payloads of BOSH requests (XEP-0206). The transport puts frames in with
// put and ends the input with end; the Session reads a byte stream.
type frameIn struct {
	in       chan []byte
	done     chan struct{}
	doneOnce sync.Once
	err      error // why the input ended; read only once done is closed
	pending  []byte

	mu       sync.Mutex
	deadline time.Time
}

func newFrameIn(buffered int) frameIn {
	return frameIn{in: make(chan []byte, buffered), done: make(chan struct{})}
}

// put hands one frame to the reader; false once the input has ended.
func (f *frameIn) put(b []byte) bool {
	select {
	case f.in <- b:
		return true
	case <-f.done:
		return false
	}
}

// end ends the input: the reader gets what was put before, then err.
// Later calls do nothing.
func (f *frameIn) end(err error) {
	f.doneOnce.Do(func() {
		f.err = err
		close(f.done)
	})
}

func (f *frameIn) setDeadline(t time.Time) {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
}

// read implements net.Conn's Read, with its read deadline.
func (f *frameIn) read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		f.mu.Lock()
		dl := f.deadline
		f.mu.Unlock()
		var timer <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			timer = t.C
			defer t.Stop()
		}
		select {
		case b := <-f.in:
			f.pending = b
		case <-f.done:
			select {
			case b := <-f.in:
				f.pending = b
			default:
				return 0, f.err
			}
		case <-timer:
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}
