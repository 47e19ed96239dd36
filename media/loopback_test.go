package media

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
)

// fakeUDP replays packets from given sources and records what is written.
type fakeUDP struct {
	net.PacketConn // nil: only the methods below are called
	in             []netip.AddrPort
	out            []netip.AddrPort
}

func (f *fakeUDP) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	if len(f.in) == 0 {
		return 0, netip.AddrPort{}, io.EOF
	}
	from := f.in[0]
	f.in = f.in[1:]
	return copy(b, "stun"), from, nil
}

func (f *fakeUDP) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	f.out = append(f.out, to)
	return len(b), nil
}

func TestLoopbackUDP(t *testing.T) {
	ap := netip.MustParseAddrPort
	f := &fakeUDP{in: []netip.AddrPort{
		ap("192.0.2.2:5000"), ap("[fd00::2]:5000"), ap("127.0.0.1:5001"),
		ap("[::ffff:192.0.2.2]:5000"), ap("[::1]:5002"), ap("[::ffff:127.0.0.5]:5003"),
	}}
	c := loopbackUDP{f}
	buf := make([]byte, 100)
	var got []netip.AddrPort
	for {
		_, from, err := c.ReadFromAddrPort(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, from)
	}
	want := []netip.AddrPort{ap("127.0.0.1:5001"), ap("[::1]:5002"), ap("[::ffff:127.0.0.5]:5003")}
	if len(got) != len(want) {
		t.Fatalf("read from %v, want only %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("read from %v, want only %v", got, want)
		}
	}

	for _, to := range []string{"192.0.2.2:5000", "127.0.0.1:5001", "[fd00::2]:1", "[::1]:5002"} {
		if n, err := c.WriteToAddrPort([]byte("stun"), ap(to)); n != 4 || err != nil {
			t.Fatalf("write to %s: %d, %v", to, n, err)
		}
	}
	if n, err := c.WriteTo([]byte("stun"), net.UDPAddrFromAddrPort(ap("198.51.100.1:9"))); n != 4 || err != nil {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	if n, err := c.WriteTo([]byte("stun"), net.UDPAddrFromAddrPort(ap("127.0.0.2:9"))); n != 4 || err != nil {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	wantOut := []netip.AddrPort{ap("127.0.0.1:5001"), ap("[::1]:5002"), ap("127.0.0.2:9")}
	if len(f.out) != len(wantOut) {
		t.Fatalf("sent to %v, want only %v", f.out, wantOut)
	}
	for i := range wantOut {
		if f.out[i] != wantOut[i] {
			t.Fatalf("sent to %v, want only %v", f.out, wantOut)
		}
	}
}

// fakeListener hands out connections from given remote addresses.
type fakeListener struct {
	net.Listener
	from   []string
	closed []string
}

type fakeConn struct {
	net.Conn
	l    *fakeListener
	from net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.from }
func (c fakeConn) Close() error {
	c.l.closed = append(c.l.closed, c.from.String())
	return nil
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.from) == 0 {
		return nil, net.ErrClosed
	}
	a := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(l.from[0]))
	l.from = l.from[1:]
	return fakeConn{l: l, from: a}, nil
}

func TestLoopbackListener(t *testing.T) {
	f := &fakeListener{from: []string{"192.0.2.2:4000", "127.0.0.1:4001", "[fd00::2]:4002", "[::1]:4003"}}
	l := loopbackListener{f}
	var got []string
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		got = append(got, c.RemoteAddr().String())
	}
	if len(got) != 2 || got[0] != "127.0.0.1:4001" || got[1] != "[::1]:4003" {
		t.Errorf("accepted %v, want the two loopback ones", got)
	}
	if len(f.closed) != 2 || f.closed[0] != "192.0.2.2:4000" || f.closed[1] != "[fd00::2]:4002" {
		t.Errorf("closed %v, want the two others", f.closed)
	}
}
