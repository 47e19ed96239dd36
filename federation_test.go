package parley_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
)

func TestFederationConfig(t *testing.T) {
	d := memdir.New()
	base := parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d, AllowUnencrypted: true, DataDir: t.TempDir()}

	// Off by default: no server-to-server listener runs.
	s, err := parley.New(base)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := s.ServeS2S(ln); !errors.Is(err, parley.ErrFederationOff) {
		t.Errorf("ServeS2S without federation = %v, want ErrFederationOff", err)
	}
	ln.Close()
	s.Shutdown(context.Background())

	// On, it needs a certificate: server streams are always encrypted.
	noTLS := base
	noTLS.DataDir = t.TempDir()
	noTLS.Federation = parley.Federation{Enabled: true}
	if _, err := parley.New(noTLS); err == nil {
		t.Error("federation without Config.TLS should fail")
	}
	bad := base
	bad.DataDir = t.TempDir()
	bad.TLS = &tls.Config{Certificates: []tls.Certificate{{}}}
	bad.Federation = parley.Federation{Enabled: true, Override: map[string]string{"x.test": "no port"}}
	if _, err := parley.New(bad); err == nil {
		t.Error("a malformed Override address should fail")
	}

	on := base
	on.DataDir = t.TempDir()
	on.TLS = &tls.Config{Certificates: []tls.Certificate{{}}}
	on.Federation = parley.Federation{Enabled: true}
	s, err = parley.New(on)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- s.ServeS2S(ln) }()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, parley.ErrServerClosed) {
		t.Errorf("ServeS2S after Shutdown = %v, want ErrServerClosed", err)
	}
}
