package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/parleyhq/parley"
)

// fedOptions are the federation flags: contacts on other XMPP servers.
type fedOptions struct {
	enabled     bool
	addr, tls   string
	override    map[string]string
	allow, deny string
	certOnly    bool
}

func (f *fedOptions) flags(fs *flag.FlagSet) {
	f.override = map[string]string{}
	fs.BoolVar(&f.enabled, "federation", false, "let users add and chat with contacts on other XMPP servers (server-to-server)")
	fs.StringVar(&f.addr, "s2s-addr", ":5269", "`address` for other servers' connections (STARTTLS), with -federation")
	fs.StringVar(&f.tls, "s2ss-addr", "", "`address` for other servers' direct-TLS connections (XEP-0368), with -federation; empty: none")
	fs.Func("s2s-override", "`domain=host:port` (or domain=tls://host:port) reaches that domain's server there instead of through DNS; repeatable", func(v string) error {
		d, a, ok := strings.Cut(v, "=")
		if !ok || d == "" || a == "" {
			return errors.New("want domain=host:port")
		}
		f.override[strings.ToLower(d)] = a
		return nil
	})
	fs.StringVar(&f.allow, "s2s-allow", "", "comma-separated `domains`: federate with these only")
	fs.StringVar(&f.deny, "s2s-deny", "", "comma-separated `domains` federation is refused with")
	fs.BoolVar(&f.certOnly, "s2s-cert-only", false, "accept only servers whose certificate verifies (no dialback)")
}

func (f *fedOptions) config() parley.Federation {
	return parley.Federation{
		Enabled:  f.enabled,
		Override: f.override,
		Allow:    splitList(f.allow),
		Deny:     splitList(f.deny),
		CertOnly: f.certOnly,
	}
}

// listen opens the server-to-server listeners when federation is on.
func (f *fedOptions) listen() (plain, direct net.Listener, err error) {
	if !f.enabled {
		return nil, nil, nil
	}
	if plain, err = listen(f.addr); err != nil {
		return nil, nil, fmt.Errorf("s2s listener: %w", err)
	}
	if f.tls != "" {
		if direct, err = listen(f.tls); err != nil {
			plain.Close()
			return nil, nil, fmt.Errorf("s2s direct-TLS listener: %w", err)
		}
	}
	return plain, direct, nil
}
