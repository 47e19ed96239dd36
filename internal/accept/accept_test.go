package accept

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flaky fails its first Accepts with the given errors, then delegates.
type flaky struct {
	net.Listener
	errs []error
}

func (f *flaky) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return f.Listener.Accept()
}

func TestLoopRetriesPassingFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fl := &flaky{Listener: ln, errs: []error{syscall.EMFILE, &net.OpError{Op: "accept", Err: syscall.ENFILE}}}
	var pauses []time.Duration
	got := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() {
		done <- Loop(fl, func() bool { return false },
			func(err error, p time.Duration) { pauses = append(pauses, p) },
			func(c net.Conn) bool { got <- c; return false })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	(<-got).Close()
	if err := <-done; err != nil {
		t.Fatalf("Loop after handle said stop: %v", err)
	}
	if len(pauses) != 2 || pauses[0] != 5*time.Millisecond || pauses[1] != 10*time.Millisecond {
		t.Fatalf("pauses %v, want 5ms then 10ms", pauses)
	}
}

func TestLoopEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var stopped atomic.Bool
	done := make(chan error, 1)
	go func() { done <- Loop(ln, stopped.Load, nil, func(c net.Conn) bool { c.Close(); return true }) }()
	stopped.Store(true)
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("stopped server: %v", err)
	}
	// A listener that fails for good ends the loop with its error.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	ln2.Close()
	if err := Loop(ln2, func() bool { return false }, nil, nil); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed listener: %v", err)
	}
}
