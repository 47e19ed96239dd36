package main

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// listenWait is how long listen keeps trying an address that is in use.
var listenWait = 10 * time.Second

// listen opens a TCP listener on addr. An address in use is tried again
// for up to listenWait: a host restarted at once (by a supervisor or a
// benchmark) can find its port still held by a connection of the process
// before it, or by an outgoing connection that took it as its ephemeral
// port, for a moment.
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(listenWait)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
