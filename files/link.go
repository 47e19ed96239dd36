package files

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Link-card errors, checked with errors.Is.
var (
	// ErrPrivateAddress: the link, or a redirect from it, leads to an
	// address that is not on the public Internet (loopback, private,
	// link-local, CGNAT, ...). The server does not fetch it.
	ErrPrivateAddress = errors.New("files: link leads to a non-public address")
	// ErrNoPreview: the link gives no card: not http(s), not an HTML page,
	// an HTTP error, too many redirects.
	ErrNoPreview = errors.New("files: no preview for this link")
)

// Card is a link preview built from a page's Open Graph tags, falling
// back to its <title> and meta description.
type Card struct {
	// URL is the link as given (normalised, without user info or
	// fragment): what the card opens.
	URL string
	// Title and Description are plain text; escape them for HTML.
	Title       string
	Description string
	// Image is an absolute http(s) URL of the page's preview image, or "".
	// Parley does not fetch it; a client that shows it contacts that site.
	Image string
	// SiteName is og:site_name, or the link's host name.
	SiteName string
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Link-card fetch limits.
const (
	linkConnectTimeout = 5 * time.Second
	linkTotalTimeout   = 10 * time.Second
	linkMaxRedirects   = 3
	linkMaxBody        = 512 << 10
	linkMaxURL         = 2048
)

// linkCards fetches pages for cards and caches the results.
type linkCards struct {
	client       *http.Client
	allowPrivate bool
	ttl          time.Duration
	size         int
	now          func() time.Time

	// isPublic is PublicAddr; tests replace it to let one loopback
	// address pass as public. dialHook, set by tests, sees every address
	// about to be dialed.
	isPublic func(netip.Addr) bool
	dialHook func(network, address string)

	mu       sync.Mutex
	lru      *list.List // of *cardEntry, most recent first
	entries  map[string]*list.Element
	inflight map[string]*cardCall
}

type cardEntry struct {
	key     string
	card    Card
	err     error
	expires time.Time
}

type cardCall struct {
	done      chan struct{}
	card      Card
	err       error
	abandoned bool // the fetching caller's context ended first
}

func newLinkCards(cfg *Config) *linkCards {
	lc := &linkCards{
		allowPrivate: cfg.AllowPrivate,
		isPublic:     PublicAddr,
		ttl:          cfg.LinkCacheTTL,
		size:         cfg.LinkCacheSize,
		now:          cfg.Clock,
		lru:          list.New(),
		entries:      make(map[string]*list.Element),
		inflight:     make(map[string]*cardCall),
	}
	lc.client = cfg.HTTPClient
	if lc.client == nil {
		var res Resolver = net.DefaultResolver
		if cfg.Resolver != nil {
			res = cfg.Resolver
		}
		lc.client = lc.guardedClient(res)
	}
	return lc
}

// guardedClient is an HTTP client that only ever connects to public
// addresses. The check runs twice: on the addresses a host name resolves
// to, before dialing, and in the dialer's Control hook on the very address
// the socket connects to, so neither DNS rebinding (a name that answers
// public first and private next) nor a redirect can get past it. No proxy
// is used: a proxy would make the connection for us, unchecked.
func (lc *linkCards) guardedClient(res Resolver) *http.Client {
	dialer := &net.Dialer{
		Timeout:   linkConnectTimeout,
		KeepAlive: 30 * time.Second,
		Control:   lc.control,
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else {
			if ips, err = res.LookupNetIP(ctx, "ip", host); err != nil {
				return nil, err
			}
		}
		var lastErr error = fmt.Errorf("%w: %s", ErrPrivateAddress, host)
		for _, ip := range ips {
			ip = ip.Unmap()
			if !lc.permitted(ip) {
				continue
			}
			target := net.JoinHostPort(ip.String(), port)
			if lc.dialHook != nil {
				lc.dialHook(network, target)
			}
			c, err := dialer.DialContext(ctx, network, target)
			if err == nil {
				return c, nil
			}
			lastErr = err
			if ctx.Err() != nil {
				break
			}
		}
		return nil, lastErr
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    linkConnectTimeout,
		ResponseHeaderTimeout:  linkTotalTimeout,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   linkTotalTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > linkMaxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrNoPreview, linkMaxRedirects)
			}
			if err := lc.checkURL(req.URL); err != nil {
				return err
			}
			return nil
		},
	}
}

// permitted reports whether the fetcher may connect to ip.
func (lc *linkCards) permitted(ip netip.Addr) bool {
	return lc.allowPrivate || lc.isPublic(ip.Unmap())
}

// control is the dialer's last word, run on the socket's actual
// destination just before it connects.
func (lc *linkCards) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !lc.permitted(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, address)
	}
	return nil
}

// checkURL refuses what is never fetched, before any connection: schemes
// other than http(s), and literal addresses that are not public.
func (lc *linkCards) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q", ErrNoPreview, u.Scheme)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: no host", ErrNoPreview)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !lc.permitted(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, ip)
	}
	return nil
}

// Non-public ranges beyond what netip's predicates cover.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// PublicAddr reports whether ip is a public unicast address, one that a
// server may fetch from on a user's behalf: not loopback, private (RFC
// 1918, IPv6 ULA), link-local (169.254.0.0/16 with the cloud metadata
// service, fe80::/10), multicast, unspecified, CGNAT (100.64.0.0/10),
// reserved or documentation space. IPv4-mapped, NAT64 and 6to4 addresses
// are judged by the IPv4 address inside them. It is shared by every part
// of Parley that fetches URLs users give.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			return PublicAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			return PublicAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return true
}

// LinkCard returns a card for rawURL, from the cache or by fetching the
// page: at most 3 redirects, 10 seconds and 512 KiB, public addresses
// only (unless Config.AllowPrivate), text/html only. Cards are cached for
// Config.LinkCacheTTL and failures for a tenth of it; concurrent requests
// for the same URL share one fetch. Safe for concurrent use.
//
// Errors: ErrPrivateAddress, ErrNoPreview, or the fetch's network error.
func (s *Service) LinkCard(ctx context.Context, rawURL string) (Card, error) {
	return s.links.card(ctx, rawURL)
}

func (lc *linkCards) card(ctx context.Context, rawURL string) (Card, error) {
	rawURL = strings.TrimSpace(rawURL)
	if len(rawURL) > linkMaxURL {
		return Card{}, fmt.Errorf("%w: URL too long", ErrNoPreview)
	}
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() {
		return Card{}, fmt.Errorf("%w: not an absolute URL", ErrNoPreview)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.User = nil // never send credentials found in a chat message
	u.Fragment, u.RawFragment = "", ""
	if err := lc.checkURL(u); err != nil {
		return Card{}, err
	}
	key := u.String()
	for {
		card, retry, err := lc.cardOnce(ctx, key, u)
		if !retry {
			return card, err
		}
	}
}

// cardOnce answers from the cache, joins a fetch in flight, or fetches.
// retry is true when the fetch it joined was abandoned by its own caller
// (whose context ended), which says nothing about the link.
func (lc *linkCards) cardOnce(ctx context.Context, key string, u *url.URL) (card Card, retry bool, err error) {
	lc.mu.Lock()
	if el, ok := lc.entries[key]; ok {
		e := el.Value.(*cardEntry)
		if lc.now().Before(e.expires) {
			lc.lru.MoveToFront(el)
			lc.mu.Unlock()
			return e.card, false, e.err
		}
		lc.lru.Remove(el)
		delete(lc.entries, key)
	}
	if c, ok := lc.inflight[key]; ok {
		lc.mu.Unlock()
		select {
		case <-c.done:
			return c.card, c.abandoned && ctx.Err() == nil, c.err
		case <-ctx.Done():
			return Card{}, false, ctx.Err()
		}
	}
	c := &cardCall{done: make(chan struct{})}
	lc.inflight[key] = c
	lc.mu.Unlock()

	c.card, c.err = lc.fetch(ctx, u)
	c.abandoned = ctx.Err() != nil

	lc.mu.Lock()
	delete(lc.inflight, key)
	if !c.abandoned {
		ttl := lc.ttl
		if c.err != nil {
			ttl /= 10
		}
		lc.entries[key] = lc.lru.PushFront(&cardEntry{key: key, card: c.card, err: c.err, expires: lc.now().Add(ttl)})
		for lc.lru.Len() > lc.size {
			old := lc.lru.Back()
			lc.lru.Remove(old)
			delete(lc.entries, old.Value.(*cardEntry).key)
		}
	}
	lc.mu.Unlock()
	close(c.done)
	return c.card, false, c.err
}

func (lc *linkCards) fetch(ctx context.Context, u *url.URL) (Card, error) {
	ctx, cancel := context.WithTimeout(ctx, linkTotalTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Card{}, fmt.Errorf("%w: %v", ErrNoPreview, err)
	}
	req.Header.Set("User-Agent", "Parley-LinkCard/1 (link preview)")
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9")
	resp, err := lc.client.Do(req)
	if err != nil {
		return Card{}, fmt.Errorf("files: fetching link: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Card{}, fmt.Errorf("%w: HTTP %s", ErrNoPreview, resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	if bt := baseType(ct); bt != "text/html" && bt != "application/xhtml+xml" {
		return Card{}, fmt.Errorf("%w: %q is not an HTML page", ErrNoPreview, ct)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, linkMaxBody))
	if err != nil && len(body) == 0 {
		return Card{}, fmt.Errorf("files: reading link: %w", err)
	}
	return buildCard(u, resp.Request.URL, charsetParam(ct), body), nil
}

// buildCard makes the card of page, fetched for link and finally served
// from final (after redirects), with the charset the server named.
func buildCard(link, final *url.URL, charset string, page []byte) Card {
	m := scanHTML(page)
	if charset == "" {
		charset = m.charset
	}
	d := textDecoder{charset: charset}
	c := Card{URL: link.String()}
	c.Title = m.first(d, 300, "og:title", "twitter:title")
	if c.Title == "" && m.hasTitle {
		c.Title = d.text(m.title, 300)
	}
	c.Description = m.first(d, 1000, "og:description", "twitter:description", "description")
	c.SiteName = m.first(d, 100, "og:site_name")
	if c.SiteName == "" {
		c.SiteName = link.Hostname()
	}
	if img := m.first(d, linkMaxURL, "og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"); img != "" {
		if iu, err := final.Parse(img); err == nil && (iu.Scheme == "http" || iu.Scheme == "https") && iu.Host != "" {
			c.Image = validUTF8Len(iu.String(), linkMaxURL)
		}
	}
	return c
}

// cardImageMax bounds a link card's picture.
const cardImageMax = 2 << 20

// CardImage fetches a link card's picture for the web panel to show from
// its own origin: with the same address checks, redirect limit and
// timeouts as LinkCard, at most 2 MiB, and only when the bytes are a PNG,
// JPEG, GIF or WebP image (whatever the remote server claims). It returns
// the bytes and their sniffed content type.
func (s *Service) CardImage(ctx context.Context, rawURL string) ([]byte, string, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNoPreview, err)
	}
	u.User = nil
	if err := s.links.checkURL(u); err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, linkTotalTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrNoPreview, err)
	}
	req.Header.Set("User-Agent", "Parley-LinkCard/1 (link preview)")
	req.Header.Set("Accept", "image/png,image/jpeg,image/gif,image/webp")
	resp, err := s.links.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("files: fetching card image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "", fmt.Errorf("%w: HTTP %s", ErrNoPreview, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, cardImageMax+1))
	if err != nil {
		return nil, "", fmt.Errorf("files: reading card image: %w", err)
	}
	if len(b) > cardImageMax {
		return nil, "", fmt.Errorf("%w: the picture is larger than %d bytes", ErrNoPreview, cardImageMax)
	}
	ct := http.DetectContentType(b)
	switch ct {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return b, ct, nil
	}
	return nil, "", fmt.Errorf("%w: not a picture (%s)", ErrNoPreview, ct)
}
