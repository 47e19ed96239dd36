package files

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/jid"
)

// Sentinel errors, checked with errors.Is. The comment of each names the
// XMPP error an edge answers a slot request with (XEP-0363 section 5).
var (
	// ErrNotFound: no such file, blob or upload slot.
	// <item-not-found/>, type cancel.
	ErrNotFound = errors.New("files: not found")
	// ErrQuota: the upload would take the user over Config.UserQuota, or
	// the user already has too many uploads pending.
	// <resource-constraint/>, type wait.
	ErrQuota = errors.New("files: quota exceeded")
	// ErrBlocked: the file name has an extension on the blacklist.
	// <not-acceptable/>, type modify (the user may rename it).
	ErrBlocked = errors.New("files: file type not allowed")
	// ErrInvalid: the request is malformed (no owner, size not positive,
	// unparseable content type). <bad-request/>, type modify.
	ErrInvalid = errors.New("files: invalid request")
	// ErrClosed: the Service has been closed.
	ErrClosed = errors.New("files: closed")
)

// TooLargeError refuses a slot for a file larger than Config.MaxFileSize.
// The edge answers <not-acceptable/> of type modify with
// <file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>Max
// </max-file-size></file-too-large> (XEP-0363 example 6).
type TooLargeError struct {
	// Max is the largest size accepted, in bytes.
	Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("files: file too large; the maximum is %d bytes", e.Max)
}

// Defaults for the zero Config fields.
const (
	DefaultMaxFileSize    = 100 << 20 // 100 MiB
	DefaultUserQuota      = 1 << 30   // 1 GiB
	DefaultSlotTTL        = 5 * time.Minute
	DefaultMaxImagePixels = 50_000_000
	DefaultMaxImageBytes  = 50 << 20
	DefaultLinkCacheTTL   = time.Hour
	DefaultLinkCacheSize  = 1024
)

// maxPendingSlots bounds the slots one user may hold unused at a time, so
// that slot requests alone cannot grow the server's memory.
const maxPendingSlots = 32

// Config configures a Service. Zero values mean the documented defaults;
// New validates it once.
type Config struct {
	// Dir is where the default DirStore keeps files and their index.
	// Required when Store is nil.
	Dir string
	// Store replaces the DirStore. The Service does not close a Store it
	// was given.
	Store Store

	// BaseURL is the public URL at which the host mounts Handler, for
	// example "https://mail.example.com/parley/files". Slot URLs, download
	// links and preview pages are built from it. Required; XEP-0363 wants
	// https, and plain http is accepted only for tests.
	BaseURL string

	// MaxFileSize is the largest upload accepted, in bytes (default
	// 100 MiB). It is also what the edge advertises as max-file-size.
	MaxFileSize int64
	// UserQuota is the total size a user's files may take, in bytes
	// (default 1 GiB; negative means no quota). Slots not yet used count
	// against it until they expire.
	UserQuota int64
	// Blacklist lists refused file extensions, with or without the dot,
	// compared case-insensitively against every extension of a name (see
	// Blocked). Nil means DefaultBlacklist(); an empty non-nil slice turns
	// the check off. New copies it.
	Blacklist []string
	// SlotTTL is how long an upload slot stays usable (default 5 minutes).
	// A slot is also used up by its first PUT, successful or not.
	SlotTTL time.Duration

	// MaxImagePixels is the largest image, in pixels (width times
	// height), that is decoded for a thumbnail (default 50 million). The
	// check reads only the image header, so an image bomb is refused
	// before any pixel memory is allocated.
	MaxImagePixels int64
	// MaxImageBytes is the largest image file thumbnailed (default 50 MiB).
	MaxImageBytes int64

	// AllowPrivate lets link cards fetch pages on loopback, private,
	// link-local and other non-public addresses. Only for tests: with it a
	// user can make the server fetch from its own network.
	AllowPrivate bool
	// Resolver looks up host names for link cards; nil means
	// net.DefaultResolver. Tests use it to point a public-looking name at
	// a local address.
	Resolver Resolver
	// HTTPClient replaces the link-card fetcher's client entirely, and
	// with it the address checks, redirect limit and timeouts. Only for
	// tests; leave nil in production.
	HTTPClient *http.Client
	// LinkCacheTTL is how long a link card is kept (default 1 hour);
	// failures are kept for a tenth of it. LinkCacheSize bounds the number
	// of cards kept (default 1024).
	LinkCacheTTL  time.Duration
	LinkCacheSize int

	// Clock returns the current time; nil means time.Now. For tests.
	Clock func() time.Time
	// Logger receives the package's logs; nil discards them.
	Logger *slog.Logger
}

// Service stores files shared in chat, hands out XEP-0363 upload slots,
// serves the files, their thumbnails and preview pages over HTTP, and
// builds link cards. Create it with New; its methods are safe for
// concurrent use, and two Services in one process are independent.
type Service struct {
	cfg       Config
	store     Store
	ownsStore bool
	base      string // BaseURL without a trailing slash
	basePath  string // its path, without a trailing slash
	host      string // its host, lower case
	now       func() time.Time
	log       *slog.Logger
	handler   http.Handler
	links     *linkCards
	thumbs    thumbnailer

	mu        sync.Mutex
	closed    bool
	slots     map[string]*slot // by token
	pending   map[string]int64 // bytes reserved by unused slots, by owner
	pendingN  map[string]int   // number of unused slots, by owner
	lastSweep time.Time
}

// slot is an upload slot waiting for its PUT.
type slot struct {
	token, id   string
	owner       string
	name        string
	size        int64
	contentType string // as the client declared it, "" if it did not
	expires     time.Time
}

// Slot is an XEP-0363 upload slot: the client PUTs the file to PutURL,
// adding Headers, and then shares GetURL.
type Slot struct {
	// FileID is the ID the file will have once uploaded.
	FileID string
	// PutURL accepts one PUT of exactly the announced size before Expires.
	PutURL string
	// GetURL is where the file can be downloaded once the PUT succeeded;
	// it is unguessable and needs no login.
	GetURL string
	// Headers are extra headers the client must send with the PUT
	// (XEP-0363 <header/> elements). Parley's PutURL carries its own
	// credential, so this is empty today.
	Headers map[string]string
	// Expires is when PutURL stops working.
	Expires time.Time
}

// New validates cfg, opens the store and returns a Service.
func New(cfg Config) (*Service, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("files: Config.BaseURL %q is not an absolute http(s) URL without query", cfg.BaseURL)
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.UserQuota == 0 {
		cfg.UserQuota = DefaultUserQuota
	}
	if cfg.Blacklist == nil {
		cfg.Blacklist = DefaultBlacklist()
	} else {
		cfg.Blacklist = append([]string{}, cfg.Blacklist...)
	}
	if cfg.SlotTTL <= 0 {
		cfg.SlotTTL = DefaultSlotTTL
	}
	if cfg.MaxImagePixels <= 0 {
		cfg.MaxImagePixels = DefaultMaxImagePixels
	}
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = DefaultMaxImageBytes
	}
	if cfg.LinkCacheTTL <= 0 {
		cfg.LinkCacheTTL = DefaultLinkCacheTTL
	}
	if cfg.LinkCacheSize <= 0 {
		cfg.LinkCacheSize = DefaultLinkCacheSize
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:      cfg,
		store:    cfg.Store,
		base:     strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"),
		basePath: strings.TrimRight(u.Path, "/"),
		host:     strings.ToLower(u.Host),
		now:      cfg.Clock,
		log:      cfg.Logger,
		slots:    make(map[string]*slot),
		pending:  make(map[string]int64),
		pendingN: make(map[string]int),
	}
	if s.store == nil {
		if cfg.Dir == "" {
			return nil, errors.New("files: set Config.Dir (where files are kept) or Config.Store")
		}
		st, err := NewDirStore(cfg.Dir)
		if err != nil {
			return nil, err
		}
		s.store, s.ownsStore = st, true
	}
	if u.Scheme == "http" {
		s.log.Warn("files: BaseURL is plain http; uploads and downloads cross the network unencrypted", "base", s.base)
	}
	s.thumbs.init()
	s.links = newLinkCards(&s.cfg)
	s.handler = s.newHandler()
	return s, nil
}

// Close stops the Service: slots are dropped, and the store is closed if
// New opened it. Handler requests after Close fail.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.slots, s.pending, s.pendingN = nil, nil, nil
	s.mu.Unlock()
	s.links.client.CloseIdleConnections()
	if s.ownsStore {
		return s.store.Close()
	}
	return nil
}

// MaxFileSize is the largest upload accepted, for the max-file-size field
// the edge advertises in service discovery (XEP-0363 section 3).
func (s *Service) MaxFileSize() int64 { return s.cfg.MaxFileSize }

// newToken returns n random bytes from crypto/rand as lower-case base32:
// case-insensitive file systems and URL handling cannot merge two tokens.
func newToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Slot hands out an upload slot for owner (the requesting JID; its bare
// form owns the file) to PUT a file called filename of size bytes. The
// name is sanitised (SanitizeName) and checked against the blacklist;
// contentType is optional and, when given, the PUT must carry the same
// media type.
//
// Errors: *TooLargeError when size is over Config.MaxFileSize, ErrQuota,
// ErrBlocked, ErrInvalid; each maps to an XEP-0363 error as its doc says.
// The edge should check that owner is a local user before calling.
func (s *Service) Slot(ctx context.Context, owner jid.JID, filename string, size int64, contentType string) (Slot, error) {
	if owner.IsZero() || owner.Local() == "" {
		return Slot{}, fmt.Errorf("%w: no owner", ErrInvalid)
	}
	if size <= 0 {
		return Slot{}, fmt.Errorf("%w: size must be positive", ErrInvalid)
	}
	if size > s.cfg.MaxFileSize {
		return Slot{}, &TooLargeError{Max: s.cfg.MaxFileSize}
	}
	ct := ""
	if strings.TrimSpace(contentType) != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || !strings.Contains(mt, "/") {
			return Slot{}, fmt.Errorf("%w: content type %q", ErrInvalid, contentType)
		}
		ct = mt
	}
	name := SanitizeName(filename)
	if Blocked(name, s.cfg.Blacklist) || Blocked(filename, s.cfg.Blacklist) {
		return Slot{}, fmt.Errorf("%w: %q", ErrBlocked, name)
	}
	who := owner.Bare().String()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Slot{}, ErrClosed
	}
	now := s.now()
	s.sweepLocked(now)
	if s.pendingN[who] >= maxPendingSlots {
		return Slot{}, fmt.Errorf("%w: %d uploads already pending", ErrQuota, maxPendingSlots)
	}
	if s.cfg.UserQuota > 0 {
		// Read under the lock: an upload completing concurrently adds to
		// the usage before it releases its reservation, so at worst a
		// file is counted twice for a moment, never missed.
		used, err := s.store.Usage(ctx, who)
		if err != nil {
			return Slot{}, fmt.Errorf("files: reading usage: %w", err)
		}
		if used+s.pending[who]+size > s.cfg.UserQuota {
			return Slot{}, fmt.Errorf("%w: %d of %d bytes used", ErrQuota, used+s.pending[who], s.cfg.UserQuota)
		}
	}
	sl := &slot{
		token:       newToken(32), // 256 bits
		id:          newToken(20), // 160 bits
		owner:       who,
		name:        name,
		size:        size,
		contentType: ct,
		expires:     now.Add(s.cfg.SlotTTL),
	}
	s.slots[sl.token] = sl
	s.pending[who] += size
	s.pendingN[who]++
	return Slot{
		FileID:  sl.id,
		PutURL:  s.base + "/upload/" + sl.token + "/" + url.PathEscape(name),
		GetURL:  s.fileURL(sl.id, name),
		Headers: map[string]string{},
		Expires: sl.expires,
	}, nil
}

func (s *Service) fileURL(id, name string) string {
	return s.base + "/file/" + id + "/" + url.PathEscape(name)
}

// sweepLocked drops expired slots, at most once a minute.
func (s *Service) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute && len(s.slots) < 4096 {
		return
	}
	s.lastSweep = now
	for tok, sl := range s.slots {
		if !now.Before(sl.expires) {
			delete(s.slots, tok)
			s.unreserveLocked(sl)
		}
	}
}

// unreserveLocked returns the quota reserved for sl.
func (s *Service) unreserveLocked(sl *slot) {
	s.pending[sl.owner] -= sl.size
	if s.pending[sl.owner] <= 0 {
		delete(s.pending, sl.owner)
	}
	s.pendingN[sl.owner]--
	if s.pendingN[sl.owner] <= 0 {
		delete(s.pendingN, sl.owner)
	}
}

// claim takes the slot for token out of the table: a slot serves one PUT
// only, whatever its outcome. It returns ErrNotFound for an unknown or
// used token and errExpired for an expired one. The caller calls done
// when the upload is over, so the reservation ends.
func (s *Service) claim(token string) (*slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	sl, ok := s.slots[token]
	if !ok {
		return nil, ErrNotFound
	}
	delete(s.slots, token) // single use from here on; reservation kept until done
	if !s.now().Before(sl.expires) {
		s.unreserveLocked(sl)
		return nil, errExpired
	}
	return sl, nil
}

var errExpired = errors.New("files: upload slot expired")

func (s *Service) done(sl *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.unreserveLocked(sl)
	}
}

// Shared records that the file fileID was sent from one user to another
// in a one-to-one chat, so that it shows in both users' Exchanged list.
// The edge calls it when it routes a message whose body or XEP-0066 OOB
// URL is one of this Service's download links (find the IDs with
// FileIDs). Sharing the same file again only moves it to the top.
// Unknown IDs give ErrNotFound, which the edge ignores.
func (s *Service) Shared(ctx context.Context, fileID string, from, to jid.JID) error {
	if from.IsZero() || to.IsZero() {
		return fmt.Errorf("%w: empty sender or recipient", ErrInvalid)
	}
	if !validFileID(fileID) {
		return ErrNotFound
	}
	err := s.store.AddShare(ctx, fileID, Share{From: from.Bare().String(), To: to.Bare().String(), At: s.now()})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("files: recording share: %w", err)
	}
	return err
}

// Exchanged lists the files user and contact sent each other, newest
// first: the conversation's attachments tab.
func (s *Service) Exchanged(ctx context.Context, user, contact jid.JID) ([]File, error) {
	if user.IsZero() || contact.IsZero() {
		return nil, fmt.Errorf("%w: empty user or contact", ErrInvalid)
	}
	return s.store.Exchanged(ctx, user.Bare().String(), contact.Bare().String())
}

// File returns the record of one file, or ErrNotFound.
func (s *Service) File(ctx context.Context, id string) (File, error) {
	if !validFileID(id) {
		return File{}, ErrNotFound
	}
	return s.store.File(ctx, id)
}

// Delete removes a file, its thumbnail and its record; its download link
// stops working and its size leaves the owner's quota. Deleting a missing
// file is not an error. Retention policies are built on it.
func (s *Service) Delete(ctx context.Context, id string) error {
	if !validFileID(id) {
		return nil
	}
	if err := s.store.DeleteFile(ctx, id); err != nil {
		return fmt.Errorf("files: %w", err)
	}
	// The record goes first: a blob left by a failure below is unreachable.
	if err := s.store.Delete(ctx, thumbID(id)); err != nil {
		return err
	}
	return s.store.Delete(ctx, id)
}

// URLs are the links a chat client shows for a file.
type URLs struct {
	// Get downloads the file (inline where that is safe).
	Get string
	// Download always downloads it as an attachment.
	Download string
	// Preview is the page to open in a new window.
	Preview string
	// Thumb is the thumbnail image; empty when the file is not an image
	// Parley can thumbnail (JPEG, PNG, GIF, WebP), judged by its type.
	Thumb string
}

// URLs returns the links for f.
func (s *Service) URLs(f File) URLs {
	u := URLs{
		Get:      s.fileURL(f.ID, f.Name),
		Download: s.fileURL(f.ID, f.Name) + "?download=1",
		Preview:  s.base + "/preview/" + f.ID,
	}
	if thumbnailable(f.ContentType) || thumbnailable(mime.TypeByExtension(path.Ext(f.Name))) {
		u.Thumb = s.base + "/thumb/" + f.ID
	}
	return u
}

// FileID returns the ID of the file a download link of this Service
// names, as found in a chat message; ok is false for any other URL.
func (s *Service) FileID(link string) (id string, ok bool) {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil || !strings.EqualFold(u.Host, s.host) {
		return "", false
	}
	rest, found := strings.CutPrefix(u.Path, s.basePath+"/file/")
	if !found {
		return "", false
	}
	id, _, _ = strings.Cut(rest, "/")
	if !validFileID(id) {
		return "", false
	}
	return id, true
}

// FileIDs returns the IDs of every download link of this Service in text
// (a message body), in order, without repeats.
func (s *Service) FileIDs(text string) []string {
	var ids []string
	prefix := s.base + "/file/"
	for {
		i := strings.Index(text, prefix)
		if i < 0 {
			return ids
		}
		text = text[i+len(prefix):]
		n := 0
		for n < len(text) && n < fileIDLen && isIDChar(text[n]) {
			n++
		}
		if id := text[:n]; validFileID(id) && !contains(ids, id) {
			ids = append(ids, id)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fileIDLen is the length of newToken(20).
const fileIDLen = 32

func isIDChar(c byte) bool { return c >= 'a' && c <= 'z' || c >= '2' && c <= '7' }

// validFileID reports whether id has the shape of a file ID, so that
// nothing else (a thumbnail's blob name, a path) is ever looked up.
func validFileID(id string) bool {
	if len(id) != fileIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return false
		}
	}
	return true
}

func thumbID(id string) string { return id + ".thumb" }
