package parley

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/parleyhq/parley/s2s"
	"github.com/parleyhq/parley/xmppsrv"
)

// Federation configures server-to-server XMPP (RFC 6120): users add
// contacts on other domains and other servers (Full Name
// <user@otherdomain>) and chat with them as with local ones. The domains
// of Config.Domains are always served together, never over federation.
type Federation struct {
	// Enabled turns federation on. Off, stanzas to other domains are
	// answered with remote-server-not-found and ServeS2S refuses to run.
	Enabled bool
	// Allow, when not empty, lists the only domains federation is allowed
	// with; Deny lists refused domains. Both apply to outbound and inbound
	// streams; a refused outbound stanza is answered with
	// remote-server-not-found, a refused inbound stream gets a
	// policy-violation error.
	Allow, Deny []string
	// Override maps a remote domain to its server's address instead of
	// DNS SRV (_xmpps-server._tcp, _xmpp-server._tcp, then the domain on
	// 5269): "host:port" for STARTTLS, "tls://host:port" for direct TLS.
	// For private deployments and tests.
	Override map[string]string
	// RootCAs verifies other servers' certificates; nil means the system
	// roots. A peer whose certificate verifies authenticates with SASL
	// EXTERNAL (XEP-0178); one whose certificate does not uses Server
	// Dialback (XEP-0220), unless CertOnly is set.
	RootCAs *x509.CertPool
	// CertOnly refuses peers whose certificate does not verify (no
	// dialback).
	CertOnly bool
	// DialbackSecret keys the dialback keys (XEP-0185); nil means a random
	// one per process. Servers behind one name share it.
	DialbackSecret []byte
	// ConnectTimeout bounds establishing a stream to another server
	// (default 30s); stanzas waiting for it then come back to their
	// senders with remote-server-timeout. IdleTimeout closes streams that
	// carried nothing for that long (default 10 minutes).
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	// ReadRate is how many bytes a second one stream from another server
	// may carry (default 8 MiB, eight times a client's: a stream carries
	// many users), ReadBurst how many at once (default 1 MiB). A peer
	// over its rate is read more slowly and loses nothing, as a client
	// over Config.ReadRate. A negative ReadRate means no limit.
	ReadRate  int
	ReadBurst int
	// Resolver looks up SRV records; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// newFederation starts federation when the Config asks for it. Stanza
// size, authentication and write limits are the client ones.
func (s *Server) newFederation(x *xmppsrv.Server) error {
	f := s.cfg.Federation
	if !f.Enabled {
		return nil
	}
	if s.cfg.TLS == nil {
		return errors.New("parley: Federation needs Config.TLS: server-to-server streams are always encrypted")
	}
	policy := s2s.CertOrDialback
	if f.CertOnly {
		policy = s2s.CertOnly
	}
	fed, err := s2s.New(s2s.Config{
		Local:          x,
		TLS:            s.cfg.TLS,
		RootCAs:        f.RootCAs,
		Policy:         policy,
		DialbackSecret: f.DialbackSecret,
		Allow:          f.Allow,
		Deny:           f.Deny,
		Override:       f.Override,
		Resolver:       f.Resolver,
		MaxStanzaSize:  s.cfg.MaxStanzaSize,
		AuthTimeout:    s.cfg.AuthTimeout,
		ConnectTimeout: f.ConnectTimeout,
		IdleTimeout:    f.IdleTimeout,
		ReadRate:       f.ReadRate,
		ReadBurst:      f.ReadBurst,
		QueueLength:    s.cfg.QueueLength,
		Logger:         s.log.With("component", "s2s"),
	})
	if err != nil {
		return err
	}
	s.s2s = fed
	x.SetRemote(fed)
	return nil
}

// ErrFederationOff is returned by ServeS2S and ServeS2STLS when
// Config.Federation.Enabled is not set.
var ErrFederationOff = errors.New("parley: federation is not enabled (Config.Federation.Enabled)")

// ServeS2S accepts connections from other XMPP servers on ln (port 5269
// by convention); they upgrade with STARTTLS. It blocks until Shutdown
// (then it returns ErrServerClosed) or a listener error.
func (s *Server) ServeS2S(ln net.Listener) error {
	if s.s2s == nil {
		return ErrFederationOff
	}
	return closedErr(s.s2s.Serve(ln))
}

func closedErr(err error) error {
	if errors.Is(err, s2s.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// ServeS2STLS accepts direct-TLS connections from other XMPP servers
// (XEP-0368, ALPN xmpp-server; port 5270 by convention). Blocks like
// ServeS2S.
func (s *Server) ServeS2STLS(ln net.Listener) error {
	if s.s2s == nil {
		return ErrFederationOff
	}
	return closedErr(s.s2s.ServeTLS(ln))
}

func (s *Server) shutdownFederation(ctx context.Context) error {
	if s.s2s == nil {
		return nil
	}
	return s.s2s.Shutdown(ctx)
}
