package files

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const trickyPage = `<!doctype html>
<HTML><HEAD>
<!-- <meta property="og:title" content="in a comment"> -->
<script>var s = '<meta property="og:title" content="in a script">'; if (a<b) {}</script>
<style>/* <title>in a style</title> */</style>
<META CONTENT='It&#39;s &amp; &quot;quoted&quot; &eacute;t&eacute;' PROPERTY='og:title'>
<meta content=unquoted-desc name=description>
<meta name="og:description"
      content="og via
               name,   spread over lines">
<meta property="og:image" content="/img/card.png?a=1&amp;b=2">
<meta property=og:site_name content="Site &lt;Name&gt;">
<meta property="og:title" content="second og:title loses">
<title>  The   <b>title</b>
 text </title>
</HEAD><body><p>x</p></body></HTML>`

func card(t *testing.T, page, link, charset string) Card {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return buildCard(u, u, charset, []byte(page))
}

func TestCardTrickyHTML(t *testing.T) {
	c := card(t, trickyPage, "https://example.org/a/b", "")
	want := Card{
		URL:         "https://example.org/a/b",
		Title:       `It's & "quoted" été`,
		Description: "og via name, spread over lines",
		Image:       "https://example.org/img/card.png?a=1&b=2",
		SiteName:    "Site <Name>",
	}
	if c != want {
		t.Errorf("card =\n%+v\nwant\n%+v", c, want)
	}
}

func TestCardFallbacks(t *testing.T) {
	for _, tc := range []struct {
		name, page, charset string
		want                Card
	}{
		{"no og tags", `<html><head><title>Plain &amp; simple</title><meta name="Description" content="the desc"></head>`, "",
			Card{Title: "Plain & simple", Description: "the desc", SiteName: "example.org"}},
		{"twitter tags", `<meta name="twitter:title" content="tw"><meta name="twitter:image" content="//cdn.example.net/i.jpg">`, "",
			Card{Title: "tw", Image: "https://cdn.example.net/i.jpg", SiteName: "example.org"}},
		{"svg title is not the page title", `<body><svg><title>icon</title></svg><p>text</p>`, "",
			Card{SiteName: "example.org"}},
		{"duplicate attributes: first wins", `<meta property="og:title" property="og:description" content="x">`, "",
			Card{Title: "x", SiteName: "example.org"}},
		{"unterminated tag", `<title>ok</title><meta property="og:description" content="never closed`, "",
			Card{Title: "ok", SiteName: "example.org"}},
		{"unterminated comment", `<title>ok</title><!-- <meta property="og:description" content="x">`, "",
			Card{Title: "ok", SiteName: "example.org"}},
		{"self-closing and spaces", `<meta property = "og:title" content = "spaced" /><meta/><meta>`, "",
			Card{Title: "spaced", SiteName: "example.org"}},
		{"empty og:title falls back", `<meta property="og:title" content=""><title>fallback</title>`, "",
			Card{Title: "fallback", SiteName: "example.org"}},
		{"charset from the header", "<title>caf\xe9</title>", "windows-1252",
			Card{Title: "café", SiteName: "example.org"}},
		{"charset from meta", "<meta charset=\"iso-8859-1\"><title>na\xefve</title>", "",
			Card{Title: "naïve", SiteName: "example.org"}},
		{"http-equiv charset", "<meta http-equiv=Content-Type content='text/html; charset=windows-1252'><title>\x93q\x94</title>", "",
			Card{Title: "“q”", SiteName: "example.org"}},
		{"invalid UTF-8 replaced", "<title>a\xffb</title>", "",
			Card{Title: "a\uFFFDb", SiteName: "example.org"}},
		{"controls and bidi removed", "<title>a\u202eb\x01c</title>", "",
			Card{Title: "abc", SiteName: "example.org"}},
		{"javascript: image dropped", `<meta property="og:image" content="javascript:alert(1)">`, "",
			Card{SiteName: "example.org"}},
		{"entities without semicolons", `<title>AT&ampT &lt;3</title>`, "",
			Card{Title: "AT&T <3", SiteName: "example.org"}},
		{"textarea hides meta", `<textarea><meta property="og:title" content="no"></textarea><title>yes</title>`, "",
			Card{Title: "yes", SiteName: "example.org"}},
		{"title case-insensitive end", `<TITLE>upper</TiTlE><meta name=description content=d>`, "",
			Card{Title: "upper", Description: "d", SiteName: "example.org"}},
	} {
		c := card(t, tc.page, "https://example.org/", tc.charset)
		tc.want.URL = "https://example.org/"
		if c != tc.want {
			t.Errorf("%s: card =\n%+v\nwant\n%+v", tc.name, c, tc.want)
		}
	}
}

func TestCardLongFieldsCut(t *testing.T) {
	page := `<meta property="og:title" content="` + strings.Repeat("t", 1000) + `"><meta name=description content="` + strings.Repeat("d ", 2000) + `">`
	c := card(t, page, "https://example.org/", "")
	if n := len([]rune(c.Title)); n != 301 || !strings.HasSuffix(c.Title, "…") {
		t.Errorf("title has %d runes", n)
	}
	if n := len([]rune(c.Description)); n > 2001 {
		t.Errorf("description has %d runes", n)
	}
}

func FuzzScanHTML(f *testing.F) {
	f.Add(trickyPage)
	f.Add(`<meta property="og:title" content='x`)
	f.Add(`<title>`)
	f.Add(`</`)
	f.Add(`<svg/><title>a</title></svg></svg>`)
	f.Fuzz(func(t *testing.T, page string) {
		m := scanHTML([]byte(page))
		d := textDecoder{charset: m.charset}
		for _, v := range m.meta {
			d.text(v, 300)
		}
		d.text(m.title, 300)
	})
}

// ogServer serves an Open Graph page and counts its requests.
func ogServer(t *testing.T, title string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<html><head><meta property="og:title" content="%s"><title>t</title></head></html>`, title)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// stubResolver answers from a table and counts lookups.
type stubResolver struct {
	mu      sync.Mutex
	table   map[string][]netip.Addr
	lookups int
}

func (r *stubResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if a, ok := r.table[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// recordDials makes the Service's fetcher report every dial.
func recordDials(s *Service) *[]string {
	var mu sync.Mutex
	var dials []string
	s.links.dialHook = func(_, addr string) {
		mu.Lock()
		dials = append(dials, addr)
		mu.Unlock()
	}
	return &dials
}

func TestLinkCardLoopbackRefusedByDefault(t *testing.T) {
	srv, hits := ogServer(t, "local")
	// no real DNS in tests: localhost is the only name
	res := &stubResolver{table: map[string][]netip.Addr{"localhost": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}}}
	e := newEnv(t, Config{Resolver: res})
	_, err := e.svc.LinkCard(context.Background(), srv.URL+"/page")
	if !errors.Is(err, ErrPrivateAddress) {
		t.Fatalf("loopback: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the loopback server was reached")
	}
	for _, u := range []string{"http://localhost:1/", "http://[::1]:1/", "http://10.1.2.3/", "http://192.168.1.1/",
		"http://100.64.0.1/", "http://[fd00::1]/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/",
		"http://[64:ff9b::a00:1]/", "http://2130706433/"} {
		if _, err := e.svc.LinkCard(context.Background(), u); err == nil {
			t.Errorf("%s: fetched", u)
		} else if !errors.Is(err, ErrPrivateAddress) && !errors.Is(err, ErrNoPreview) {
			var dns *net.DNSError
			if !errors.As(err, &dns) {
				t.Errorf("%s: %v", u, err)
			}
		}
	}

	e2 := newEnv(t, Config{AllowPrivate: true})
	c, err := e2.svc.LinkCard(context.Background(), srv.URL+"/page")
	if err != nil || c.Title != "local" {
		t.Fatalf("AllowPrivate: %+v, %v", c, err)
	}
}

func TestLinkCardMetadataServiceRefusedWithoutDialing(t *testing.T) {
	res := &stubResolver{}
	e := newEnv(t, Config{Resolver: res})
	dials := recordDials(e.svc)
	start := time.Now()
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1%25eth0]/", "http://[::ffff:169.254.169.254]/"} {
		if _, err := e.svc.LinkCard(context.Background(), u); !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s: %v", u, err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("refusal took %v", took)
	}
	if len(*dials) != 0 || res.lookups != 0 {
		t.Errorf("dialed %v, %d lookups", *dials, res.lookups)
	}
}

func TestLinkCardNameResolvingToLoopbackRefused(t *testing.T) {
	srv, hits := ogServer(t, "behind the name")
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := &stubResolver{table: map[string][]netip.Addr{
		"news.example.com":   {netip.MustParseAddr("127.0.0.1")},
		"mixed.example.com":  {netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("::1")},
		"mapped.example.com": {netip.MustParseAddr("::ffff:127.0.0.1")},
	}}
	e := newEnv(t, Config{Resolver: res})
	dials := recordDials(e.svc)
	for _, host := range []string{"news.example.com", "mixed.example.com", "mapped.example.com"} {
		_, err := e.svc.LinkCard(context.Background(), fmt.Sprintf("http://%s:%d/", host, port))
		if !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s: %v", host, err)
		}
	}
	if hits.Load() != 0 || len(*dials) != 0 {
		t.Errorf("reached the server (%d hits, dials %v)", hits.Load(), *dials)
	}
	// the same lookup with AllowPrivate shows the resolver is the one used
	e2 := newEnv(t, Config{Resolver: res, AllowPrivate: true})
	c, err := e2.svc.LinkCard(context.Background(), fmt.Sprintf("http://news.example.com:%d/", port))
	if err != nil || c.Title != "behind the name" || c.SiteName != "news.example.com" {
		t.Fatalf("AllowPrivate: %+v, %v", c, err)
	}
}

func TestDialControlChecksTheDialedAddress(t *testing.T) {
	lc := newLinkCards(&Config{Clock: time.Now, LinkCacheTTL: time.Hour, LinkCacheSize: 1})
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": false, "[::1]:443": false, "169.254.169.254:80": false, "10.0.0.1:80": false,
		"[fd12::1]:80": false, "100.100.100.100:80": false, "0.0.0.0:80": false, "[::]:80": false,
		"93.184.216.34:80": true, "[2606:4700::1111]:443": true, "garbage": false,
	} {
		err := lc.control("tcp", addr, nil)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrPrivateAddress)) {
			t.Errorf("control(%s) = %v", addr, err)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2001:4860:4860::8888": true,
		"127.0.0.1": false, "127.8.8.8": false, "10.0.0.1": false, "172.16.0.1": false, "172.31.255.255": false,
		"172.32.0.1": true, "192.168.0.1": false, "169.254.169.254": false, "100.64.0.1": false,
		"100.127.255.255": false, "100.128.0.1": true, "0.0.0.0": false, "0.1.2.3": false,
		"224.0.0.251": false, "255.255.255.255": false, "198.18.0.1": false, "192.0.2.1": false,
		"::1": false, "::": false, "fe80::1": false, "fc00::1": false, "fd00::1": false, "ff02::1": false,
		"::ffff:10.0.0.1": false, "::ffff:8.8.8.8": true, "64:ff9b::7f00:1": false, "64:ff9b::808:808": true,
		"2002:7f00:1::": false, "2002:808:808::": true, "2001:db8::1": false, "fec0::1": false,
	} {
		if got := PublicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", s, got, want)
		}
	}
}

// onlyLoopbackOne lets 127.0.0.1 pass as public, so that one test server
// plays the part of a public site while every other non-public address is
// still refused.
func onlyLoopbackOne(s *Service) {
	s.links.isPublic = func(a netip.Addr) bool {
		return a == netip.MustParseAddr("127.0.0.1") || PublicAddr(a)
	}
}

func TestLinkCardRedirects(t *testing.T) {
	var inner atomic.Int32
	innerSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.Add(1)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<title>internal admin</title>`)
	}))
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		innerSrv.Listener = ln
		innerSrv.Start()
		defer innerSrv.Close()
	} else {
		innerSrv = nil
	}
	res := &stubResolver{table: map[string][]netip.Addr{"intranet.example.com": {netip.MustParseAddr("10.9.9.9")}}}

	mux := http.NewServeMux()
	outer := httptest.NewServer(mux)
	defer outer.Close()
	port := outer.Listener.Addr().(*net.TCPAddr).Port
	redirect := func(path, to string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) })
	}
	redirect("/to-10", "http://10.0.0.1/")
	redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/")
	redirect("/to-intranet", fmt.Sprintf("http://intranet.example.com:%d/", port))
	redirect("/to-file", "file:///etc/passwd")
	redirect("/to-ftp", "ftp://example.org/")
	if innerSrv != nil {
		redirect("/to-ipv6-loopback", innerSrv.URL+"/")
	}
	redirect("/hop1", "/hop2")
	redirect("/hop2", "/hop3")
	redirect("/hop3", "/page")
	redirect("/loop1", "/loop2")
	redirect("/loop2", "/loop3")
	redirect("/loop3", "/loop4")
	redirect("/loop4", "/page")
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<meta property="og:title" content="public page"><meta property="og:image" content="img.png">`)
	})

	e := newEnv(t, Config{Resolver: res})
	onlyLoopbackOne(e.svc)
	dials := recordDials(e.svc)
	ctx := context.Background()

	c, err := e.svc.LinkCard(ctx, outer.URL+"/hop1")
	if err != nil || c.Title != "public page" {
		t.Fatalf("3 redirects: %+v, %v", c, err)
	}
	if c.URL != outer.URL+"/hop1" || c.Image != outer.URL+"/img.png" {
		t.Errorf("card URL %q, image %q (image must resolve against the final page)", c.URL, c.Image)
	}
	if _, err := e.svc.LinkCard(ctx, outer.URL+"/loop1"); !errors.Is(err, ErrNoPreview) {
		t.Errorf("4 redirects: %v", err)
	}
	for _, p := range []string{"/to-10", "/to-metadata", "/to-intranet", "/to-ipv6-loopback"} {
		if p == "/to-ipv6-loopback" && innerSrv == nil {
			continue
		}
		if _, err := e.svc.LinkCard(ctx, outer.URL+p); !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"/to-file", "/to-ftp"} {
		if _, err := e.svc.LinkCard(ctx, outer.URL+p); !errors.Is(err, ErrNoPreview) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if inner.Load() != 0 {
		t.Error("the internal server was reached")
	}
	for _, d := range *dials {
		if !strings.HasPrefix(d, "127.0.0.1:") {
			t.Errorf("dialed %s", d)
		}
	}
}

func TestLinkCardNotHTML(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("/img", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(tinyPNG(t, 2, 2, false))
	})
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		filler := strings.Repeat("<p>filler</p>", 1000)
		for i := 0; i < 10_000; i++ { // ~130 MB if it were all read
			if _, err := fmt.Fprint(w, filler); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, strings.Repeat(" ", linkMaxBody), `<title>too late</title>`)
	})
	e := newEnv(t, Config{AllowPrivate: true})
	ctx := context.Background()
	for _, p := range []string{"/img", "/gone"} {
		if _, err := e.svc.LinkCard(ctx, srv.URL+p); !errors.Is(err, ErrNoPreview) {
			t.Errorf("%s: %v", p, err)
		}
	}
	start := time.Now()
	if c, err := e.svc.LinkCard(ctx, srv.URL+"/huge"); err != nil || c.Title != "" {
		t.Errorf("/huge: %+v %v", c, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("/huge took %v", took)
	}
	if c, err := e.svc.LinkCard(ctx, srv.URL+"/late"); err != nil || c.Title != "" {
		t.Errorf("/late: title %q beyond the 512 KiB cap, %v", c.Title, err)
	}
	for _, u := range []string{"javascript:alert(1)", "mailto:a@b", "/relative", "https://", strings.Repeat("x", 3000)} {
		if _, err := e.svc.LinkCard(ctx, u); !errors.Is(err, ErrNoPreview) {
			t.Errorf("%q: %v", u, err)
		}
	}
}

func TestLinkCardDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	e := newEnv(t, Config{AllowPrivate: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := e.svc.LinkCard(ctx, srv.URL); err == nil {
		t.Fatal("a hanging server gave a card")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestLinkCardCache(t *testing.T) {
	srv, hits := ogServer(t, "cached")
	e := newEnv(t, Config{AllowPrivate: true, LinkCacheTTL: time.Minute, LinkCacheSize: 2})
	ctx := context.Background()
	get := func(p string) {
		t.Helper()
		if c, err := e.svc.LinkCard(ctx, srv.URL+p); err != nil || c.Title != "cached" {
			t.Fatalf("%s: %+v %v", p, c, err)
		}
	}
	get("/a")
	get("/a#fragment") // same page
	if hits.Load() != 1 {
		t.Fatalf("%d fetches for one URL", hits.Load())
	}
	e.clock.Advance(2 * time.Minute)
	get("/a")
	if hits.Load() != 2 {
		t.Fatalf("expired entry not refetched (%d)", hits.Load())
	}
	get("/b")
	get("/c") // evicts /a
	get("/b")
	if hits.Load() != 4 {
		t.Fatalf("hits = %d, want 4", hits.Load())
	}
	get("/a")
	if hits.Load() != 5 {
		t.Fatalf("evicted entry not refetched (%d)", hits.Load())
	}
	if n := e.svc.links.lru.Len(); n > 2 {
		t.Errorf("cache holds %d entries", n)
	}

	// concurrent requests share one fetch
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); e.svc.LinkCard(ctx, srv.URL+"/d") }()
	}
	wg.Wait()
	if hits.Load() > 6+1 { // one fetch, or two if a caller came after the first was cached and evicted
		t.Errorf("hits = %d after 10 concurrent requests", hits.Load())
	}
}

// A caller that gives up does not take the others down with it.
func TestLinkCardAbandonedFetchRetried(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<title>slow</title>`)
	}))
	defer srv.Close()
	e := newEnv(t, Config{AllowPrivate: true})
	impatient, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.svc.LinkCard(impatient, srv.URL); done <- err }()
	time.Sleep(20 * time.Millisecond) // let the impatient caller start the fetch
	c, err := e.svc.LinkCard(context.Background(), srv.URL)
	if err != nil || c.Title != "slow" {
		t.Fatalf("patient caller: %+v, %v", c, err)
	}
	if err := <-done; err == nil {
		t.Error("impatient caller got a card")
	}
	// and the abandoned attempt was not cached as a failure
	if c, err := e.svc.LinkCard(context.Background(), srv.URL); err != nil || c.Title != "slow" {
		t.Errorf("after: %+v, %v", c, err)
	}
}
