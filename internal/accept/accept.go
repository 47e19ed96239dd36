// Package accept runs the accept loop the XMPP listeners share (client
// and server-to-server): passing failures of the listener, such as a
// timeout or a process out of file descriptors, are retried with a
// growing pause instead of ending the listener.
package accept

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// Loop accepts connections from ln and gives each to handle until handle
// returns false or ln fails for good. It returns nil when stopped reports
// true after a failure (the server is shutting down), and otherwise the
// listener's error. retry, when not nil, is told of each passing failure
// and the pause before the next attempt, at most a second.
func Loop(ln net.Listener, stopped func() bool, retry func(err error, pause time.Duration), handle func(net.Conn) bool) error {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if stopped() {
				return nil
			}
			if !passing(err) {
				return err
			}
			pause = min(max(pause*2, 5*time.Millisecond), time.Second)
			if retry != nil {
				retry(err, pause)
			}
			time.Sleep(pause)
			continue
		}
		pause = 0
		if !handle(c) {
			return nil
		}
	}
}

// passing reports an accept failure worth retrying.
func passing(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
