package parley_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
)

func TestNewValidates(t *testing.T) {
	d := memdir.New()
	ok := parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d, AllowUnencrypted: true, DataDir: t.TempDir()}
	cases := map[string]func(*parley.Config){
		"Domains":       func(c *parley.Config) { c.Domains = nil },
		"not a domain":  func(c *parley.Config) { c.Domains = []string{"a@b"} },
		"Directory":     func(c *parley.Config) { c.Directory = nil },
		"Authenticator": func(c *parley.Config) { c.Authenticator = nil },
		"TLS":           func(c *parley.Config) { c.AllowUnencrypted = false },
		"DataDir":       func(c *parley.Config) { c.DataDir = "" },
	}
	for name, mutate := range cases {
		c := ok
		mutate(&c)
		if _, err := parley.New(c); err == nil || !strings.Contains(err.Error(), "parley:") {
			t.Errorf("%s: New = %v, want a parley: error", name, err)
		}
	}
	s, err := parley.New(ok)
	if err != nil {
		t.Fatal(err)
	}
	// The store is locked while the first server runs.
	if _, err := parley.New(ok); err == nil {
		t.Error("a second Server on the same data dir should fail")
	}
	s.Shutdown(context.Background())
}

func TestTwoServersServeAndShutDown(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@one.test", "Alice", "pw", true)
	d.AddUser("bob@two.test", "Bob", "pw", true)
	var servers []*parley.Server
	for _, dom := range []string{"one.test", "two.test"} {
		s, err := parley.New(parley.Config{Domains: []string{dom}, Directory: d, Authenticator: d, TLS: &tls.Config{}, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.ServeXMPP(ln) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "<?xml version='1.0'?><stream:stream to='"+dom+"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		if !strings.Contains(string(buf[:n]), "from='"+dom+"'") {
			t.Fatalf("%s answered %q", dom, buf[:n])
		}
		servers = append(servers, s)
		t.Cleanup(func() {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			if err := <-done; err != parley.ErrServerClosed {
				t.Errorf("ServeXMPP after Shutdown = %v", err)
			}
			c.Close()
		})
	}
	rec := httptest.NewRecorder()
	servers[0].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "parley_xmpp_connections 1") || !strings.HasSuffix(rec.Body.String(), "# EOF\n") {
		t.Fatalf("metrics:\n%s", rec.Body.String())
	}
}
