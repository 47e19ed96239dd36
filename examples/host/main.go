// Command host is an example mail host with Parley embedded: what a
// mail-server vendor writes to give its users chat, in one small program.
//
// It demonstrates:
//
//   - a host directory and authenticator (account/memdir) filled from a
//     users file, with aliases;
//   - SCRAM-SHA-1 and SCRAM-SHA-256 offered to XMPP clients, the keys
//     derived in the background and kept between runs, so that a host with
//     thousands of users starts at once;
//   - the embedded bbolt store under a data directory;
//   - XMPP on 5222 (STARTTLS) and 5223 (direct TLS) with a self-signed
//     certificate made on first run;
//   - Parley's HTTP handler, host-meta discovery and metrics mounted on the
//     host's own mux;
//   - a toy webmail at https://localhost:8443/: log in as a demo user and
//     the chat panel (<parley-chat>) in its header logs in to chat with
//     the webmail session, no second password (webmail.go);
//   - a clean shutdown on SIGINT or SIGTERM.
//
// Run it with
//
//	go run ./examples/host
//
// On first run it makes three demo users (alice, bob and carol, with random
// passwords) and a sales@ alias, saves them in <data>/users.json and prints
// them. Log in from any XMPP client as alice@example.test, with the server
// set to 127.0.0.1 port 5222, and accept the self-signed certificate.
//
// Flags:
//
//	-domain example.test   the mail domain served
//	-data ./parley-data    where the store, certificate, users and key cache live
//	-users FILE            users and aliases (JSON, see below) instead of demo users
//	-xmpp-addr :5222       XMPP with STARTTLS
//	-xmpps-addr :5223      XMPP with direct TLS
//	-http-addr :8443       HTTPS: the toy webmail at /, Parley under /parley/, metrics at /metrics
//	-domain-roster=true    every chat-enabled user of the domain sees every other
//	-log-level info        debug, info, warn or error
//	-allow-unencrypted     let clients log in without TLS (tests only)
//	-media-udp-addr :7882  the one UDP port of meetings' audio and video (open it in the firewall)
//	-media-tcp-addr ADDR   also ICE over TCP on ADDR, for networks that block UDP
//	-media-public-ip IP    the address browsers reach media at, behind a 1:1 NAT (comma-separated)
//	-stun URL, -turn URL   STUN and TURN servers for browsers (comma-separated); -turn-secret
//	                       for TURN REST credentials (coturn's static-auth-secret)
//	-disable-media         meetings without audio and video
//	-federation            contacts on other XMPP servers (server-to-server); then:
//	-s2s-addr :5269        other servers' connections (STARTTLS); -s2ss-addr ADDR for direct TLS
//	-s2s-override D=ADDR   reach domain D's server at ADDR (host:port or tls://host:port), not DNS
//	-s2s-allow, -s2s-deny  comma-separated domains to federate with only, or never
//	-s2s-cert-only         only servers whose certificate verifies (no dialback)
//
// The users file:
//
//	{"users": [{"address": "alice@example.test", "name": "Alice Liddell",
//	            "password": "...", "chat_enabled": true}],
//	 "aliases": {"sales@example.test": ["alice@example.test", "bob@example.test"]}}
//
// chat_enabled is optional and defaults to true.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/media"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	domain, data, users            string
	xmppAddr, xmppsAddr, httpAddr  string
	domainRoster, allowUnencrypted bool
	logLevel                       slog.Level
	resumeTimeout                  time.Duration
	publicURL                      string
	allowPrivateLinks              bool
	pprofAddr                      string
	sessionGap                     time.Duration
	readRate                       int
	media                          mediaOptions
	fed                            fedOptions
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("host", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.domain, "domain", "example.test", "the mail `domain` served")
	fs.StringVar(&o.data, "data", "./parley-data", "`directory` for the store, certificate, demo users and SCRAM key cache")
	fs.StringVar(&o.users, "users", "", "JSON `file` of users and aliases (default: demo users kept in <data>/users.json)")
	fs.StringVar(&o.xmppAddr, "xmpp-addr", ":5222", "`address` for XMPP clients with STARTTLS")
	fs.StringVar(&o.xmppsAddr, "xmpps-addr", ":5223", "`address` for XMPP clients with direct TLS")
	fs.StringVar(&o.httpAddr, "http-addr", ":8443", "`address` for HTTPS (Parley under /parley/, metrics at /metrics)")
	fs.BoolVar(&o.domainRoster, "domain-roster", true, "every chat-enabled user of the domain sees every other one")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.BoolVar(&o.allowUnencrypted, "allow-unencrypted", false, "let XMPP clients log in without TLS (for tests on loopback only)")
	fs.DurationVar(&o.sessionGap, "session-gap", 0, "quiet `time` that ends a chat session in the history list; 0 means Parley's default, 30m")
	fs.StringVar(&o.pprofAddr, "pprof-addr", "", "loopback `address` for Go profiling endpoints (net/http/pprof), for measuring")
	fs.BoolVar(&o.allowPrivateLinks, "allow-private-links", false, "let link previews fetch pages on loopback and private addresses (for tests only)")
	fs.StringVar(&o.publicURL, "public-url", "", "`URL` at which clients reach /parley/ (default: https://<the HTTPS listener>/parley)")
	fs.IntVar(&o.readRate, "read-rate", 0, "`bytes` a second one XMPP client connection may send before it is read more slowly; 0 means Parley's default (1048576), -1 no limit (for load tests)")
	fs.DurationVar(&o.resumeTimeout, "resume-timeout", 0, "how long a dropped XMPP session waits to be resumed (XEP-0198); 0 means Parley's default, 5m")
	o.media.flags(fs)
	o.fed.flags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return o, nil
}

// run is main with its exit code returned, so that deferred cleanups run.
func run(args []string, stdout, stderr io.Writer) int {
	start := time.Now()
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "host:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	fail := func(msg string, args ...any) int {
		log.Error(msg, args...)
		return 1
	}

	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fail("cannot create the data directory", "dir", o.data, "err", err)
	}
	users, err := loadUsers(o, log)
	if err != nil {
		return fail("cannot load users", "err", err)
	}
	dir, domains, err := users.directory(o.domain)
	if err != nil {
		return fail("bad users", "file", users.path, "err", err)
	}
	cache := &scramCache{path: filepath.Join(o.data, "scram-cache.json"), log: log}
	cache.load(dir)

	names := append(append([]string{}, domains...), "localhost", "127.0.0.1", "::1")
	cert, certFile, err := loadOrCreateCert(o.data, names, time.Now(), log)
	if err != nil {
		return fail("cannot load or create the TLS certificate", "err", err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	if o.allowUnencrypted {
		log.Warn("-allow-unencrypted: passwords may cross the network in the clear; use it for tests on loopback only")
	}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, a := range []string{o.xmppAddr, o.xmppsAddr, o.httpAddr} {
		ln, err := listen(a)
		if err != nil {
			closeAll()
			return fail("cannot listen; is another server using the address? Choose another with -xmpp-addr, -xmpps-addr or -http-addr", "addr", a, "err", err)
		}
		lns = append(lns, ln)
	}
	s2sLn, s2ssLn, err := o.fed.listen()
	if err != nil {
		closeAll()
		return fail("cannot listen", "err", err)
	}
	for _, ln := range []net.Listener{s2sLn, s2ssLn} {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	publicURL := o.publicURL
	if publicURL == "" {
		publicURL = "https://" + reachable(lns[2].Addr()) + "/parley"
	}
	sessions := newSessions()
	srv, err := parley.New(parley.Config{
		Domains:             domains,
		Directory:           dir,
		Authenticator:       hostAuth{Dir: dir, sessions: sessions},
		TLS:                 tlsConf,
		AllowUnencrypted:    o.allowUnencrypted,
		DataDir:             o.data,
		PublicURL:           publicURL,
		AllowPrivateLinks:   o.allowPrivateLinks,
		DisableDomainRoster: !o.domainRoster,
		ResumeTimeout:       o.resumeTimeout,
		ReadRate:            o.readRate,
		SessionGap:          o.sessionGap,
		MediaUDPAddr:        o.media.udpAddr,
		MediaTCPAddr:        o.media.tcpAddr,
		MediaPublicIPs:      o.media.publicIPs(),
		MediaICEServers:     o.media.iceServers(),
		DisableMedia:        o.media.disable,
		Federation:          o.fed.config(),
		Logger:              log,
	})
	if err != nil {
		closeAll()
		return fail("cannot start Parley", "err", err)
	}
	xmppLn, xmppsLn, httpLn := lns[0], lns[1], lns[2]

	if o.pprofAddr != "" {
		startPprof(o.pprofAddr, log)
	}
	mux := http.NewServeMux()
	wm := &webmail{dir: dir, sessions: sessions, domains: domains, log: log}
	wm.mount(mux, srv)
	mux.Handle("/metrics", srv.MetricsHandler())
	httpSrv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConf.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		// Browsers that refuse the self-signed certificate make handshake
		// errors that are not worth more than debug.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	serveErr := make(chan error, 5)
	serve := func(name string, f func() error) {
		if err := f(); err != nil && !errors.Is(err, parley.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("%s: %w", name, err)
		}
	}
	go serve("xmpp", func() error { return srv.ServeXMPP(xmppLn) })
	go serve("xmpps", func() error { return srv.ServeXMPPTLS(xmppsLn) })
	go serve("https", func() error { return httpSrv.ServeTLS(httpLn, "", "") })
	if s2sLn != nil {
		go serve("s2s", func() error { return srv.ServeS2S(s2sLn) })
		log.Info("federation on", "s2s", s2sLn.Addr(), "overrides", o.fed.override)
	}
	if s2ssLn != nil {
		go serve("s2s-tls", func() error { return srv.ServeS2STLS(s2ssLn) })
	}

	printBanner(stdout, o, users, domains, certFile, xmppLn.Addr(), xmppsLn.Addr(), httpLn.Addr(), srv.Media())
	log.Info("parley host ready", "domains", domains, "users", users.count(), "xmpp", xmppLn.Addr(),
		"xmpps", xmppsLn.Addr(), "https", httpLn.Addr(), "startup", time.Since(start).Round(time.Millisecond))

	// Derive the SCRAM keys the cache did not have, one user at a time,
	// while the server already answers; logins meanwhile derive their own.
	warmCtx, stopWarm := context.WithCancel(context.Background())
	var warm sync.WaitGroup
	warm.Go(func() {
		t := time.Now()
		dir.Warm(warmCtx)
		if warmCtx.Err() == nil {
			log.Info("SCRAM credentials ready for every user", "took", time.Since(t).Round(time.Millisecond))
		}
		cache.save(dir)
	})

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	code := 0
	select {
	case <-sigCtx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("server failed; shutting down", "err", err)
		code = 1
	}
	stopSignals() // a second signal ends the process at once

	stopWarm()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := httpSrv.Shutdown(ctx); err != nil {
			log.Warn("HTTPS shutdown", "err", err)
		}
	})
	wg.Go(func() {
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("Parley shutdown", "err", err)
		}
	})
	wg.Wait()
	closeAll()
	warm.Wait()
	log.Info("stopped")
	return code
}

func printBanner(w io.Writer, o options, u *usersSource, domains []string, certFile string, xmpp, xmpps, https net.Addr, sfu *media.SFU) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nParley example host is running for %s\n\n", strings.Join(domains, ", "))
	fmt.Fprintf(&b, "  XMPP, STARTTLS     %s\n", xmpp)
	fmt.Fprintf(&b, "  XMPP, direct TLS   %s\n", xmpps)
	fmt.Fprintf(&b, "  HTTPS              %s   (webmail with chat: https://localhost:%d/, metrics at /metrics)\n", https, port(https))
	fmt.Fprintf(&b, "  meeting media      %s\n", mediaLine(sfu))
	fmt.Fprintf(&b, "  data directory     %s\n", o.data)
	fmt.Fprintf(&b, "  certificate        %s (self-signed: accept it in your client)\n\n", certFile)
	if u.demo {
		fmt.Fprintf(&b, "Demo users (kept in %s):\n", u.path)
		u.printUsers(&b, 20)
	} else {
		fmt.Fprintf(&b, "%d users and %d aliases from %s\n", len(u.file.Users), len(u.file.Aliases), u.path)
	}
	if len(u.file.Users) > 0 {
		fmt.Fprintf(&b, "\nIn an XMPP client, log in as %s with the server set to 127.0.0.1, port %d.\n",
			u.file.Users[0].Address, port(xmpp))
	}
	fmt.Fprintln(&b)
	io.WriteString(w, b.String())
}

func port(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}

// Compile-time check that the directory is everything Parley asks for.
var _ interface {
	parley.Directory
	parley.Authenticator
	parley.SCRAMProvider
} = (*memdir.Dir)(nil)

// reachable names a listener's address as a client on this machine dials
// it: a wildcard listener is "localhost", an IP keeps its literal.
func reachable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
