package parley

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/chat"
	"github.com/parleyhq/parley/files"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/meeting"
	"github.com/parleyhq/parley/muc"
	"github.com/parleyhq/parley/roster"
	"github.com/parleyhq/parley/s2s"
	"github.com/parleyhq/parley/storage"
	"github.com/parleyhq/parley/storage/boltstore"
	"github.com/parleyhq/parley/web"
	"github.com/parleyhq/parley/xmppsrv"
)

// The host's interfaces, defined in package account so that every part of
// Parley can use them; see there for their contracts.
type (
	// Directory is the host's address book of users and aliases.
	Directory = account.Directory
	// Authenticator checks passwords; it may also implement SCRAMProvider.
	Authenticator = account.Authenticator
	// SCRAMProvider is the optional add-on that makes Parley offer SCRAM.
	SCRAMProvider = account.SCRAMProvider
	// SCRAMCredentials are a user's stored SCRAM keys.
	SCRAMCredentials = account.SCRAMCredentials
	// Entry is one user or alias of the Directory.
	Entry = account.Entry
	// RequestAuthenticator is the optional add-on that lets the host's
	// webmail session log the chat panel in.
	RequestAuthenticator = account.RequestAuthenticator
)

// Entry kinds.
const (
	User  = account.User
	Alias = account.Alias
)

// Sentinel errors the host returns from its Directory and Authenticator.
var (
	ErrNotFound   = account.ErrNotFound
	ErrAuthFailed = account.ErrAuthFailed
)

// Config configures a Server. Zero values mean the documented defaults;
// New validates it once.
type Config struct {
	// Domains are the mail domains served, for example "example.com".
	// Required. The first is used for clients that do not name one.
	Domains []string
	// Directory and Authenticator are the host's; both required.
	Directory     Directory
	Authenticator Authenticator
	// TLS holds the certificate for the XMPP listeners. Required unless
	// AllowUnencrypted is set.
	TLS *tls.Config
	// AllowUnencrypted lets XMPP clients log in without TLS. Only for
	// tests on loopback: passwords would cross the network in the clear.
	AllowUnencrypted bool

	// PublicURL is where the host mounts Handler, as browsers and XMPP
	// clients reach it (https://mail.example.com/parley). Links Parley
	// makes (file URLs, the WebSocket endpoint in host-meta) start with
	// it. Empty: https://<first domain>/parley for files, and the
	// request's own host for host-meta.
	PublicURL string
	// WebOrigins are other origins whose pages may use the webmail
	// session to open chat (the page's own origin always may).
	WebOrigins []string
	// TrustForwardedTLS: a reverse proxy in front terminates TLS and sets
	// X-Forwarded-Proto.
	TrustForwardedTLS bool

	// Files shared in chat (XEP-0363 uploads) live under FilesDir
	// (default: DataDir/files). MaxFileSize (default 100 MiB) bounds one
	// file and UserQuota (default 1 GiB) a user's total. Blacklist lists
	// refused extensions, for chat and meetings alike (nil: a default list
	// of executables and scripts; empty: none refused).
	FilesDir    string
	MaxFileSize int64
	UserQuota   int64
	Blacklist   []string
	// AllowPrivateLinks lets link previews fetch pages on private and
	// loopback addresses. For tests only.
	AllowPrivateLinks bool

	// Appointments lets the nightly meeting sweep ask the host's calendar
	// whether the appointment a meeting was made for still exists; nil
	// keeps such meetings. MeetingSweepAt is the time of day of the sweep
	// (default 03:00 local time).
	Appointments   meeting.AppointmentChecker
	MeetingSweepAt time.Duration

	// Meetings' audio and video go through Parley's SFU (package media):
	// every participant reaches it on one UDP port, MediaUDPAddr, default
	// ":7882" (DefaultMediaUDPAddr; open UDP 7882 in the firewall). If
	// the default port is taken (a second Server in one process) a free
	// one is used and a warning logged; a MediaUDPAddr given here that
	// cannot be opened fails New. "127.0.0.1:0" suits tests: on a
	// loopback address the SFU exchanges media with loopback addresses
	// only (media.Config.UDPAddr), so a Chromium under test needs
	// --allow-loopback-in-peer-connection.
	MediaUDPAddr string
	// MediaTCPAddr adds ICE over TCP on one port, for networks that block
	// UDP (":7882" too, say). Default: off.
	MediaTCPAddr string
	// MediaPublicIPs are the addresses browsers should use when the host
	// is behind a 1:1 NAT (a cloud VM with a private address).
	MediaPublicIPs []string
	// MediaICEServers are the STUN and TURN servers handed to browsers;
	// a TURN server with a Secret gets credentials that expire.
	MediaICEServers []media.ICEServer
	// DisableMedia turns audio and video off (and Media returns nil);
	// meeting pages keep their chat and files.
	DisableMedia bool

	// Store keeps rosters, offline messages and user data. Nil means a
	// bbolt file, parley.db, under DataDir.
	Store storage.Store
	// DataDir is where the default store lives. Required when Store is nil.
	DataDir string

	// DisableDomainRoster turns off the domain roster: by default every
	// chat-enabled user of a domain sees every other one, as in the
	// webmail products Parley joins; with it set, users build their own
	// rosters with subscriptions.
	DisableDomainRoster bool
	// DirectoryRefresh is how long a domain's user list is cached (default
	// 30s): the domain roster follows directory changes within that time.
	DirectoryRefresh time.Duration

	// Logger receives Parley's logs; nil discards them.
	Logger *slog.Logger

	// Limits. See xmppsrv.Config for each default.
	MaxStanzaSize      int           // bytes, default 262144
	ReadRate           int           // bytes a second one client connection may send, default 1 MiB; negative: no limit
	ReadBurst          int           // bytes at once over ReadRate, default MaxStanzaSize
	AuthTimeout        time.Duration // to log in after connecting, default 60s
	IdleTimeout        time.Duration // silence before a ping, default 120s
	PingTimeout        time.Duration // to answer that ping, default 30s
	MaxSessionsPerUser int           // resources per account, default 10
	LoginFailures      int           // per account per LoginWindow, default 5
	LoginFailuresPerIP int           // per remote address per LoginWindow, default 20
	LoginWindow        time.Duration // default 5m
	OfflineLimit       int           // offline messages kept per user, default 1000
	QueueLength        int           // stanzas queued per client, default 2048
	// ResumeTimeout is how long a session whose connection dropped waits
	// for its client to resume it (XEP-0198), default 5 minutes; then
	// what the client did not acknowledge goes to offline storage.
	ResumeTimeout time.Duration

	// History: the chat view opens on the most recent HistoryLines
	// messages (default 75) from the last HistoryDays days (default 30);
	// a chat session ends after SessionGap of quiet (default 30 minutes).
	// History is always kept; it cannot be turned off.
	HistoryLines int
	HistoryDays  int
	SessionGap   time.Duration

	// AliasRooms offers every mail alias as a persistent chat room of its
	// members: sales@example.com is the room sales@conference.example.com,
	// named after the alias and open to its members only. Users create
	// other rooms on conference.<domain> either way (XEP-0045).
	AliasRooms bool

	// Federation: contacts on other servers (server-to-server XMPP); off
	// unless Federation.Enabled. See Federation.
	Federation Federation

	// Push configures push notifications to phones (XEP-0357): what a
	// notification may tell the app server. The zero value names the
	// sender and never the message text.
	Push xmppsrv.PushConfig

	// BOSH bounds XMPP over BOSH (XEP-0206) at /http-bind, for web
	// clients that do not speak WebSocket; zero values are the defaults.
	BOSH xmppsrv.BOSHConfig
}

// Server is Parley embedded in a mail host. Create it with New, hand it
// listeners with ServeXMPP and ServeXMPPTLS, mount Handler on the host's
// HTTP mux, and stop it with Shutdown. Its methods are safe for concurrent
// use; two Servers can run in one process.
type Server struct {
	cfg     Config
	store   storage.Store
	ownsDB  bool
	dir     *account.Cache
	roster  *roster.Service
	chat    *chat.Service
	xmpp    *xmppsrv.Server
	s2s     *s2s.Server // nil without federation
	files   *files.Service
	meet    *meeting.Service
	media   *media.SFU
	bridge  *mediaBridge
	stopBG  context.CancelFunc
	metrics *xmppsrv.Metrics
	mux     *http.ServeMux
	log     *slog.Logger
}

// New validates cfg, opens the store and returns a Server ready to serve.
func New(cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("parley: Config.Domains is empty; name at least one mail domain")
	}
	domains := make([]string, 0, len(cfg.Domains))
	for _, d := range cfg.Domains {
		j, err := jid.Parse(strings.TrimSpace(d))
		if err != nil || j.Local() != "" || j.Resource() != "" {
			return nil, fmt.Errorf("parley: Config.Domains: %q is not a domain name", d)
		}
		domains = append(domains, j.Domain())
	}
	if cfg.Directory == nil {
		return nil, errors.New("parley: Config.Directory is nil; Parley needs the host's user directory")
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("parley: Config.Authenticator is nil; Parley needs the host to check passwords")
	}
	if cfg.TLS == nil && !cfg.AllowUnencrypted {
		return nil, errors.New("parley: Config.TLS is nil; give the server's certificate (AllowUnencrypted is for tests only)")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DirectoryRefresh <= 0 {
		cfg.DirectoryRefresh = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: log, store: cfg.Store, metrics: new(xmppsrv.Metrics)}
	if s.store == nil {
		if cfg.DataDir == "" {
			return nil, errors.New("parley: set Config.DataDir (where the embedded store lives) or Config.Store")
		}
		db, err := boltstore.Open(filepath.Join(cfg.DataDir, "parley.db"), nil)
		if err != nil {
			return nil, fmt.Errorf("parley: opening the store: %w", err)
		}
		s.store, s.ownsDB = db, true
	}
	s.dir = account.NewCache(cfg.Directory, cfg.DirectoryRefresh)
	local := make(map[string]bool, len(domains))
	for _, d := range domains {
		local[d] = true
	}
	s.roster = roster.New(roster.Config{Store: s.store, Directory: s.dir, DomainRoster: !cfg.DisableDomainRoster})
	archive, ok := s.store.(storage.Archive)
	if !ok {
		s.closeStore()
		return nil, errors.New("parley: Config.Store does not keep message history (storage.Archive)")
	}
	s.chat = chat.New(chat.Config{
		Directory: s.dir, Store: s.store, Archive: archive,
		Local:        func(d string) bool { return local[d] },
		OfflineLimit: cfg.OfflineLimit,
		HistoryLines: cfg.HistoryLines, HistoryDays: cfg.HistoryDays, SessionGap: cfg.SessionGap,
	})
	filesDir := cfg.FilesDir
	if filesDir == "" {
		if cfg.DataDir == "" {
			s.closeStore()
			return nil, errors.New("parley: set Config.FilesDir (where shared files live) or Config.DataDir")
		}
		filesDir = filepath.Join(cfg.DataDir, "files")
	}
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	if base == "" {
		base = "https://" + domains[0] + "/parley"
	}
	fs, err := files.New(files.Config{
		Dir: filesDir, BaseURL: base + "/files",
		MaxFileSize: cfg.MaxFileSize, UserQuota: cfg.UserQuota, Blacklist: cfg.Blacklist,
		AllowPrivate: cfg.AllowPrivateLinks, Logger: log.With("component", "files"),
	})
	if err != nil {
		s.closeStore()
		return nil, fmt.Errorf("parley: %w", err)
	}
	s.files = fs
	x, err := xmppsrv.New(xmppsrv.Config{
		Domains:            domains,
		TLS:                cfg.TLS,
		AllowUnencrypted:   cfg.AllowUnencrypted,
		Directory:          s.dir,
		Auth:               cfg.Authenticator,
		Roster:             s.roster,
		Chat:               s.chat,
		Store:              s.store,
		Files:              fs,
		Logger:             log.With("component", "xmpp"),
		Metrics:            s.metrics,
		MaxStanzaSize:      cfg.MaxStanzaSize,
		ReadRate:           cfg.ReadRate,
		ReadBurst:          cfg.ReadBurst,
		AuthTimeout:        cfg.AuthTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		PingTimeout:        cfg.PingTimeout,
		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
		QueueLength:        cfg.QueueLength,
		ResumeTimeout:      cfg.ResumeTimeout,
		WebOrigins:         cfg.WebOrigins,
		TrustForwardedTLS:  cfg.TrustForwardedTLS,
		LoginFailures:      cfg.LoginFailures,
		LoginFailuresPerIP: cfg.LoginFailuresPerIP,
		LoginWindow:        cfg.LoginWindow,
		Version:            Version,
	})
	if err != nil {
		fs.Close()
		s.closeStore()
		return nil, fmt.Errorf("parley: %w", err)
	}
	s.xmpp = x
	x.Extend([]xmppsrv.Component{xmppsrv.NewMUC(x, muc.Config{AliasRooms: cfg.AliasRooms})}, nil)
	x.Extend(nil, xmppsrv.AccountServices(x)) // PEP, private XML storage, blocking
	x.Extend(nil, []xmppsrv.AccountHandler{xmppsrv.NewPush(x, cfg.Push)})
	if err := s.newFederation(x); err != nil {
		x.Shutdown(context.Background())
		fs.Close()
		s.closeStore()
		return nil, err
	}
	if len(cfg.MediaICEServers) > 0 {
		// XEP-0215: XMPP clients find the same STUN/TURN servers as the
		// meeting pages, with expiring TURN credentials.
		ice := make([]xmppsrv.ICEServer, len(cfg.MediaICEServers))
		for i, v := range cfg.MediaICEServers {
			ice[i] = xmppsrv.ICEServer(v)
		}
		d, err := xmppsrv.ExtDisco(ice, 0)
		if err != nil {
			x.Shutdown(context.Background())
			fs.Close()
			s.closeStore()
			return nil, fmt.Errorf("parley: Config.MediaICEServers: %w", err)
		}
		x.Extend(nil, []xmppsrv.AccountHandler{d})
	}
	if err := s.newMeetings(base, filesDir); err != nil {
		x.Shutdown(context.Background())
		fs.Close()
		s.closeStore()
		return nil, err
	}
	if err := s.newMedia(filesDir); err != nil {
		s.stopBG()
		s.meet.Close()
		x.Shutdown(context.Background())
		fs.Close()
		s.closeStore()
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.Handle("/meetings/", s.meet.Handler())
	s.mountMedia()
	s.mux.Handle("/panel/", http.StripPrefix("/panel", web.PanelHandler()))
	s.mux.Handle("/ws", x.WebSocketHandler())
	s.mux.Handle("/http-bind", x.BOSHHandler(cfg.BOSH))
	s.mux.HandleFunc("/api/search", s.serveSearch)
	s.mux.HandleFunc("/api/files", s.serveFiles)
	s.mux.HandleFunc("/api/conversations", s.serveConversations)
	s.mux.HandleFunc("/api/linkcard", s.serveLinkCard)
	s.mux.HandleFunc("/api/linkcard/image", s.serveCardImage)
	s.mux.Handle("/files/", http.StripPrefix("/files", fs.Handler()))
	return s, nil
}

// Version is Parley's version, reported to clients (XEP-0092).
const Version = "0.1.0"

// ServeXMPP accepts XMPP client connections on ln (port 5222 by
// convention); clients upgrade with STARTTLS before they log in. It blocks
// until Shutdown (then it returns ErrServerClosed) or a listener error.
func (s *Server) ServeXMPP(ln net.Listener) error { return s.xmpp.Serve(ln) }

// ServeXMPPTLS accepts direct-TLS XMPP connections on ln (XEP-0368, port
// 5223 by convention). Blocks like ServeXMPP.
func (s *Server) ServeXMPPTLS(ln net.Listener) error { return s.xmpp.ServeTLS(ln) }

// ErrServerClosed is returned by ServeXMPP and ServeXMPPTLS after Shutdown.
var ErrServerClosed = xmppsrv.ErrServerClosed

// Meetings returns the online meeting service: create meetings for the
// host's calendar (CreateForAppointment), list a user's meetings, and
// everything the meeting pages do.
func (s *Server) Meetings() *meeting.Service { return s.meet }

// Files returns the service that keeps files shared in chat: what a user
// exchanged with a contact, link previews.
func (s *Server) Files() *files.Service { return s.files }

// Chat returns the chat service, for the host's own pages: the history
// window of a conversation, older pages, past chat sessions, search and
// deletion of a user's conversations. It trusts its caller to pass the
// authenticated user as the owner: no user can read another's archive
// through Parley's own endpoints.
func (s *Server) Chat() *chat.Service { return s.chat }

// Handler returns the HTTP handler the host mounts on its mux, with the
// prefix stripped (see Config.PublicURL):
//
//	mux.Handle("/parley/", http.StripPrefix("/parley", srv.Handler()))
//
// It serves the webmail chat panel (<parley-chat>, see web/panel) under
// /panel/, online meetings (pages, JSON API, live events) under
// /meetings/, their audio and video signalling (package media) at
// /media/ws, XMPP over WebSocket (RFC 7395) at /ws and over BOSH
// (XEP-0206) at /http-bind; shared files (uploads,
// downloads, previews, thumbnails) under /files/; and, for the host's own
// pages (authenticated by the webmail session, see RequestAuthenticator),
// a directory search at /api/search?q=, past chat sessions with a contact
// at /api/conversations?with=, the files exchanged with a contact at
// /api/files?with=, and link previews at /api/linkcard?url=.
func (s *Server) Handler() http.Handler { return s.mux }

// WellKnownHandler serves XEP-0156 discovery (host-meta and
// host-meta.json, readable cross-origin) so web XMPP clients such as
// Converse.js find the WebSocket and BOSH endpoints. Mount it at the site root:
//
//	mux.Handle("/.well-known/", srv.WellKnownHandler())
func (s *Server) WellKnownHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := s.publicURL(r)
		ws := "wss" + strings.TrimPrefix(strings.TrimPrefix(base, "https"), "http") + "/ws"
		bosh := base + "/http-bind"
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "max-age=3600")
		switch r.URL.Path {
		case "/.well-known/host-meta":
			w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
			fmt.Fprintf(w, `<?xml version='1.0' encoding='utf-8'?>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>
  <Link rel="urn:xmpp:alt-connections:websocket" href="%s"/>
  <Link rel="urn:xmpp:alt-connections:xbosh" href="%s"/>
</XRD>
`, xmppsrv.AttrEscape(ws), xmppsrv.AttrEscape(bosh))
		case "/.well-known/host-meta.json":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"links": []map[string]string{
					{"rel": "urn:xmpp:alt-connections:websocket", "href": ws},
					{"rel": "urn:xmpp:alt-connections:xbosh", "href": bosh},
				},
			})
		default:
			http.NotFound(w, r)
		}
	})
}

// publicURL is Config.PublicURL, or https://<host>/parley for r.
func (s *Server) publicURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	return "https://" + r.Host + "/parley"
}

// MetricsHandler serves live figures (connections, sessions, logins,
// stanzas in and out, auth failures, queue drops) in the OpenMetrics text
// format, for the host to mount where its monitoring scrapes.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
		s.metrics.WriteOpenMetrics(w)
	})
}

// Shutdown closes every XMPP stream cleanly (what is queued for a client
// is flushed first, then the stream ends with system-shutdown), ends the
// meetings' audio and video (recordings in progress are finished and
// stored), then closes the store Parley opened. It returns when all is
// closed or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.xmpp.Shutdown(ctx)
	if ferr := s.shutdownFederation(ctx); err == nil {
		err = ferr
	}
	s.stopBG()
	s.closeMedia()
	s.meet.Close()
	s.files.Close()
	if cerr := s.closeStore(); err == nil {
		err = cerr
	}
	return err
}

func (s *Server) closeStore() error {
	if s.ownsDB {
		return s.store.Close()
	}
	return nil
}
