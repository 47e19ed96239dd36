package parley_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/storage"
)

func TestNewValidates(t *testing.T) {
	d := memdir.New()
	ok := parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d, AllowUnencrypted: true, DataDir: t.TempDir()}
	cases := map[string]func(*parley.Config){
		"Domains":       func(c *parley.Config) { c.Domains = nil },
		"not a domain":  func(c *parley.Config) { c.Domains = []string{"a@b"} },
		"Directory":     func(c *parley.Config) { c.Directory = nil },
		"Authenticator": func(c *parley.Config) { c.Authenticator = nil },
		"TLS":           func(c *parley.Config) { c.AllowUnencrypted = false },
		"DataDir":       func(c *parley.Config) { c.DataDir = "" },
	}
	for name, mutate := range cases {
		c := ok
		mutate(&c)
		if _, err := parley.New(c); err == nil || !strings.Contains(err.Error(), "parley:") {
			t.Errorf("%s: New = %v, want a parley: error", name, err)
		}
	}
	s, err := parley.New(ok)
	if err != nil {
		t.Fatal(err)
	}
	// The store is locked while the first server runs.
	if _, err := parley.New(ok); err == nil {
		t.Error("a second Server on the same data dir should fail")
	}
	s.Shutdown(context.Background())
}

func TestTwoServersServeAndShutDown(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@one.test", "Alice", "pw", true)
	d.AddUser("bob@two.test", "Bob", "pw", true)
	var servers []*parley.Server
	for _, dom := range []string{"one.test", "two.test"} {
		s, err := parley.New(parley.Config{Domains: []string{dom}, Directory: d, Authenticator: d, TLS: &tls.Config{}, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.ServeXMPP(ln) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "<?xml version='1.0'?><stream:stream to='"+dom+"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		if !strings.Contains(string(buf[:n]), "from='"+dom+"'") {
			t.Fatalf("%s answered %q", dom, buf[:n])
		}
		servers = append(servers, s)
		t.Cleanup(func() {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			if err := <-done; err != parley.ErrServerClosed {
				t.Errorf("ServeXMPP after Shutdown = %v", err)
			}
			c.Close()
		})
	}
	rec := httptest.NewRecorder()
	servers[0].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "parley_xmpp_connections 1") || !strings.HasSuffix(rec.Body.String(), "# EOF\n") {
		t.Fatalf("metrics:\n%s", rec.Body.String())
	}
}

// sessionAuth is a host authenticator whose webmail session is a header.
type sessionAuth struct{ *memdir.Dir }

func (sessionAuth) AuthenticateRequest(r *http.Request) (string, error) {
	if u := r.Header.Get("X-Test-User"); u != "" {
		return u, nil
	}
	return "", errors.New("no session")
}

func TestSearchAPI(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@example.com", "Alice Liddell", "pw", true)
	d.AddUser("alan@example.com", "Alan Turing", "pw", false)
	d.AddUser("bob@example.com", "Bob", "pw", true)
	d.AddUser("alex@other.com", "Alex Other", "pw", true)
	d.AddAlias("all@example.com", "All staff", "alice@example.com")
	s, err := parley.New(parley.Config{Domains: []string{"example.com", "other.com"}, Directory: d, Authenticator: sessionAuth{d}, AllowUnencrypted: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	get := func(user, q string) (int, string) {
		req := httptest.NewRequest("GET", "/api/search?q="+q, nil)
		if user != "" {
			req.Header.Set("X-Test-User", user)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("", "al"); code != http.StatusUnauthorized {
		t.Fatalf("no session: %d", code)
	}
	code, body := get("bob@example.com", "al")
	if code != 200 {
		t.Fatalf("search: %d %s", code, body)
	}
	for _, want := range []string{`"address":"alice@example.com"`, `"address":"alan@example.com","name":"Alan Turing","kind":"user","chat_enabled":false`, `"address":"all@example.com","name":"All staff","kind":"alias","chat_enabled":true`} {
		if !strings.Contains(body, want) {
			t.Errorf("search lacks %s: %s", want, body)
		}
	}
	if strings.Contains(body, "other.com") {
		t.Errorf("search leaked another domain: %s", body)
	}
	if code, _ := get("bob@example.com", ""); code != http.StatusBadRequest {
		t.Fatalf("empty query: %d", code)
	}
	// XEP-0156 discovery points web clients at the WebSocket.
	rec := httptest.NewRecorder()
	s.WellKnownHandler().ServeHTTP(rec, httptest.NewRequest("GET", "https://mail.example.com/.well-known/host-meta.json", nil))
	if !strings.Contains(rec.Body.String(), `"href":"wss://mail.example.com/parley/ws"`) || !strings.Contains(rec.Body.String(), `"href":"https://mail.example.com/parley/http-bind"`) ||
		rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("host-meta.json: %s %v", rec.Body.String(), rec.Header())
	}
	rec = httptest.NewRecorder()
	s.WellKnownHandler().ServeHTTP(rec, httptest.NewRequest("GET", "https://mail.example.com/.well-known/host-meta", nil))
	if !strings.Contains(rec.Body.String(), `rel="urn:xmpp:alt-connections:websocket" href="wss://mail.example.com/parley/ws"`) ||
		!strings.Contains(rec.Body.String(), `rel="urn:xmpp:alt-connections:xbosh" href="https://mail.example.com/parley/http-bind"`) {
		t.Fatalf("host-meta: %s", rec.Body.String())
	}
}

func TestLinkCardWithImageThroughOurOrigin(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<html><head><meta property="og:title" content="A page"><meta property="og:image" content="/pic.png"></head></html>`)
		case "/pic.png":
			w.Write(png)
		case "/fake.png":
			io.WriteString(w, "<script>alert(1)</script>")
		}
	}))
	defer site.Close()
	d := memdir.New()
	d.AddUser("bob@example.com", "Bob", "pw", true)
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: sessionAuth{d}, AllowUnencrypted: true,
		DataDir: t.TempDir(), AllowPrivateLinks: true, PublicURL: "https://mail.example.com/parley"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("X-Test-User", "bob@example.com")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	rec := get("/api/linkcard?url=" + url.QueryEscape(site.URL+"/page"))
	want := `"Image":"https://mail.example.com/parley/api/linkcard/image?url=` + url.QueryEscape(site.URL+"/pic.png")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), strings.ReplaceAll(want, "&", `\u0026`)) {
		t.Fatalf("card: %d %s", rec.Code, rec.Body.String())
	}
	rec = get("/api/linkcard/image?url=" + url.QueryEscape(site.URL+"/pic.png"))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "image/png" || !bytes.Equal(rec.Body.Bytes(), png) {
		t.Fatalf("image: %d %v", rec.Code, rec.Header())
	}
	if rec := get("/api/linkcard/image?url=" + url.QueryEscape(site.URL+"/fake.png")); rec.Code != http.StatusNoContent {
		t.Fatalf("a script posing as a picture: %d", rec.Code)
	}
}

func TestConversationsAPI(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@example.com", "Alice", "pw", true)
	d.AddUser("bob@example.com", "Bob", "pw", true)
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: sessionAuth{d}, AllowUnencrypted: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := time.Now().Add(-3 * time.Hour)
	for i, at := range []time.Time{base, base.Add(time.Minute), base.Add(2 * time.Hour)} {
		id := s.Chat().NewID()
		m := storage.ArchivedMessage{Owner: "alice@example.com", With: "bob@example.com", ID: id, Stamp: at, Body: fmt.Sprintf("hello %d", i), Data: []byte("<message/>")}
		if err := s.Chat().Archive(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest("GET", "/api/conversations?with=bob@example.com", nil)
	req.Header.Set("X-Test-User", "alice@example.com")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var got struct {
		Conversations []struct {
			Messages int
			Preview  string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Conversations) != 2 ||
		got.Conversations[0].Preview != "hello 2" || got.Conversations[1].Messages != 2 {
		t.Fatalf("conversations: %d %s", rec.Code, rec.Body.String())
	}
}
