package main

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestListenWaitsForABusyAddress: an address in use when the host starts
// is taken once it is free, and one that stays in use fails with
// EADDRINUSE after listenWait.
func TestListenWaitsForABusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := busy.Addr().String()
	go func() {
		time.Sleep(300 * time.Millisecond)
		busy.Close()
	}()
	ln, err := listen(addr)
	if err != nil {
		t.Fatalf("the address freed after 300ms was not taken: %v", err)
	}
	defer ln.Close()

	old := listenWait
	listenWait = 300 * time.Millisecond
	defer func() { listenWait = old }()
	if _, err := listen(addr); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("an address that stays in use: %v, want EADDRINUSE", err)
	}
}
