package media

import (
	"net"
	"net/netip"
)

// A UDP socket bound to a loopback address still receives packets that
// local programs send from the host's other addresses (a browser on the
// same host checks every pair of its addresses with the SFU's), and
// answering them would send media to those addresses, off loopback. An
// SFU bound to a loopback address therefore exchanges packets only with
// loopback addresses: loopbackUDP drops the others in both directions,
// and loopbackListener closes ICE-TCP connections from them. A browser
// then selects its own loopback candidate (Chromium gathers one with
// --allow-loopback-in-peer-connection).

// udpConn is what loopbackUDP wraps: a *net.UDPConn, or a fake in tests.
type udpConn interface {
	net.PacketConn
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// loopbackUDP is a UDP socket that talks to loopback addresses only. It
// offers pion's allocation-free ReadFromAddrPort and WriteToAddrPort.
type loopbackUDP struct {
	udpConn
}

func isLoopback(a netip.Addr) bool { return a.Unmap().IsLoopback() }

func (c loopbackUDP) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := c.ReadFromUDPAddrPort(b)
		if err != nil || isLoopback(from.Addr()) {
			return n, from, err
		}
	}
}

// WriteToAddrPort drops a packet to any other address as the network
// would, without an error: ICE tries every candidate pair, and the ones
// to a browser's other addresses just fail.
func (c loopbackUDP) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	if !isLoopback(to.Addr()) {
		return len(b), nil
	}
	return c.WriteToUDPAddrPort(b, to)
}

func (c loopbackUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (c loopbackUDP) WriteTo(b []byte, to net.Addr) (int, error) {
	u, ok := to.(*net.UDPAddr)
	if !ok {
		return c.udpConn.WriteTo(b, to)
	}
	return c.WriteToAddrPort(b, u.AddrPort())
}

// loopbackListener accepts ICE-TCP connections from loopback addresses
// only.
type loopbackListener struct {
	net.Listener
}

func (l loopbackListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok && isLoopback(a.AddrPort().Addr()) {
			return c, nil
		}
		c.Close()
	}
}

// onLoopback reports whether a is a loopback socket address.
func onLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	}
	return false
}
