//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gosrc.io/xmpp"
	"gosrc.io/xmpp/stanza"
)

// TestSlixmpp runs each slixmpp scenario against its own fresh host.
func TestSlixmpp(t *testing.T) {
	requireSlixmpp(t)
	t.Logf("client: %s via %s", slixInfo, python)
	for _, tc := range []struct {
		name         string
		scenario     string
		domainRoster bool
	}{
		{"SCRAMLoginOverSTARTTLS", "login", true},
		{"DirectTLS", "direct-tls", true},
		{"DomainRoster", "domain-roster", true},
		{"SubscribeApproveWithGroup", "subscribe", false},
		{"PresenceShowStatus", "presence", true},
		{"UnicodeMessages", "unicode", true},
		{"OfflineDelivery", "offline", true},
		{"AliasFanOut", "alias", true},
		{"MessageCrossingInitialPresence", "coming-online", true},
		{"WrongPassword", "wrong-password", true},
		{"MalformedXML", "malformed", true},
		{"OversizeStanza", "oversize", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, tc.domainRoster)
			slix(t, h, tc.scenario)
		})
	}
}

// TestGosrcClient logs in with the gosrc.io/xmpp client (PLAIN over
// STARTTLS), talks to a slixmpp user and gets an answer back.
func TestGosrcClient(t *testing.T) {
	requireSlixmpp(t)
	t.Parallel()
	h := startHost(t, true)
	bob := startSlix(t, h, "echo", "bob", "alice", "1")

	got := make(chan stanza.Message, 16)
	router := xmpp.NewRouter()
	router.HandleFunc("message", func(_ xmpp.Sender, p stanza.Packet) {
		if m, ok := p.(stanza.Message); ok {
			got <- m
		}
	})
	clientErrs := make(chan error, 16)
	cfg := &xmpp.Config{
		TransportConfiguration: xmpp.TransportConfiguration{
			Address:   h.xmpp,
			Domain:    domain,
			TLSConfig: &tls.Config{InsecureSkipVerify: true}, // the host's certificate is self-signed
		},
		Jid:            "alice@" + domain + "/gosrc",
		Credential:     xmpp.Password(passwords["alice"]),
		ConnectTimeout: 10,
	}
	client, err := xmpp.NewClient(cfg, router, func(err error) {
		select {
		case clientErrs <- err:
		default:
		}
	})
	if err != nil {
		t.Fatalf("gosrc.io/xmpp NewClient: %v", err)
	}
	connected := make(chan error, 1)
	go func() { connected <- client.Connect() }()
	select {
	case err := <-connected:
		if err != nil {
			t.Fatalf("gosrc.io/xmpp login as alice: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gosrc.io/xmpp login as alice: no session after 20s")
	}
	defer client.Disconnect()
	if !client.Session.TlsEnabled {
		t.Errorf("gosrc.io/xmpp session is not over TLS")
	}
	if !strings.HasPrefix(client.Session.BindJid, "alice@"+domain+"/") {
		t.Errorf("bound JID %q, want alice@%s/...", client.Session.BindJid, domain)
	}

	body := "hello from gosrc.io/xmpp \u2615 <&> \u4f60\u597d"
	msg := stanza.NewMessage(stanza.Attrs{To: "bob@" + domain, Type: stanza.MessageTypeChat})
	msg.Body = body
	if err := client.Send(msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-got:
			if m.Type == stanza.MessageTypeError {
				t.Fatalf("message bounced: %+v", m)
			}
			if m.Body == "" {
				continue
			}
			if want := "echo: " + body; m.Body != want {
				t.Fatalf("got %q from %s, want %q", m.Body, m.From, want)
			}
			if !strings.HasPrefix(m.From, "bob@"+domain) {
				t.Errorf("reply from %q, want bob", m.From)
			}
			bob.wait(t, 20*time.Second)
			return
		case err := <-clientErrs:
			t.Fatalf("gosrc.io/xmpp client error: %v", err)
		case <-deadline:
			t.Fatal("no echo from bob within 15s")
		}
	}
}

// TestGoSendxmpp sends a message with the go-sendxmpp command to a slixmpp
// user who is logged in.
func TestGoSendxmpp(t *testing.T) {
	requireSlixmpp(t)
	bin, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		msg := "go-sendxmpp not found; install the Debian package go-sendxmpp (apt-get install -y go-sendxmpp)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Parallel()
	h := startHost(t, true)
	body := "sent by go-sendxmpp \u2709 at " + time.Now().UTC().Format(time.TimeOnly)
	carol := startSlix(t, h, "receive", "carol", "alice", body)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"-u", "alice@"+domain,
		"-p", passwords["alice"],
		"-j", h.xmpp,
		"-n", // the host's certificate is self-signed
		"--timeout", "10",
		"carol@"+domain,
	)
	cmd.Stdin = strings.NewReader(body + "\n")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no ~/.config/go-sendxmpp/sendxmpprc from this machine
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("go-sendxmpp failed: %v\n%s", err, out)
		}
		t.Fatalf("go-sendxmpp: %v", err)
	}
	carol.wait(t, 20*time.Second)
}
