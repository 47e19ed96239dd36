package s2s_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/parleyhq/parley/s2s"
	"github.com/parleyhq/parley/xmppsrv"
)

// printer stands for the local XMPP server: it prints what federation
// delivers.
type printer struct {
	domain string
	got    chan struct{}
}

func (p printer) Local(d string) bool { return d == p.domain }
func (p printer) Deliver(el *xmppsrv.Element) {
	fmt.Printf("%s got a %s from %s: %q\n", p.domain, el.Local, el.Get("from"), el.ChildText("jabber:client", "body"))
	p.got <- struct{}{}
}

// A server for example.org delivers to one for example.net; a message to
// a server that is down comes back to its sender as an error.
func Example() {
	got := make(chan struct{}, 2)
	newServer := func(domain string, override map[string]string) (*s2s.Server, string) {
		srv, err := s2s.New(s2s.Config{
			Local:    printer{domain, got},
			TLS:      &tls.Config{Certificates: []tls.Certificate{selfSigned(domain)}},
			Override: override, // instead of DNS SRV, for this example
		})
		if err != nil {
			panic(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go srv.Serve(ln)
		return srv, ln.Addr().String()
	}
	overrides := map[string]string{"down.example": "127.0.0.1:1"}
	org, orgAddr := newServer("example.org", overrides)
	net_, netAddr := newServer("example.net", map[string]string{"example.org": orgAddr})
	overrides["example.net"] = netAddr

	msg := xmppsrv.NewElement("jabber:client", "message", "from", "alice@example.org/phone", "to", "bob@example.net", "type", "chat").
		Add(xmppsrv.NewElement("jabber:client", "body").AddText("hello"))
	org.Send(msg)
	<-got // after dialback, in the background

	lost := xmppsrv.NewElement("jabber:client", "message", "from", "alice@example.org/phone", "to", "carol@down.example", "type", "chat").
		Add(xmppsrv.NewElement("jabber:client", "body").AddText("anyone?"))
	org.Send(lost)
	<-got

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	org.Shutdown(ctx)
	net_.Shutdown(ctx)
	// Output:
	// example.net got a message from alice@example.org/phone: "hello"
	// example.org got a message from carol@down.example: "anyone?"
}

func selfSigned(domain string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
