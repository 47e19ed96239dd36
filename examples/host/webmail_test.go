package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
)

func webmailMux(t *testing.T) (*http.ServeMux, hostAuth) {
	t.Helper()
	dir := memdir.New()
	for _, u := range []struct {
		addr, name string
		chat       bool
	}{{"alice@example.test", "Alice Liddell", true}, {"bob@example.test", "Bob Builder", true}, {"dave@example.test", "Dave Bowman", false}} {
		if err := dir.AddUser(u.addr, u.name, "pw-"+u.addr, u.chat); err != nil {
			t.Fatal(err)
		}
	}
	sessions := newSessions()
	auth := hostAuth{Dir: dir, sessions: sessions}
	srv, err := parley.New(parley.Config{Domains: []string{"example.test"}, Directory: dir, Authenticator: auth,
		AllowUnencrypted: true, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	wm := &webmail{dir: dir, sessions: sessions, domains: []string{"example.test"}, log: slog.New(slog.DiscardHandler)}
	wm.mount(mux, srv)
	return mux, auth
}

func do(mux http.Handler, r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, r)
	return rec.Result()
}

func login(address, password, origin string) *http.Request {
	r := httptest.NewRequest("POST", "https://mail.example.test/login", strings.NewReader(url.Values{"address": {address}, "password": {password}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func TestWebmailSessionLogsThePanelIn(t *testing.T) {
	mux, auth := webmailMux(t)

	res := do(mux, httptest.NewRequest("GET", "https://mail.example.test/", nil))
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `action="/login"`) || strings.Contains(string(body), "<parley-chat") {
		t.Fatalf("without a session / is not the login form:\n%s", body)
	}

	res = do(mux, login("alice@example.test", "wrong", ""))
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/?error=1" || len(res.Cookies()) != 0 {
		t.Fatalf("wrong password: %s %q cookies %v", res.Status, res.Header.Get("Location"), res.Cookies())
	}
	res = do(mux, login("alice", "pw-alice@example.test", "https://evil.example"))
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site login post: %s, want 403", res.Status)
	}

	res = do(mux, login("alice", "pw-alice@example.test", "https://mail.example.test"))
	cookies := res.Cookies()
	if res.StatusCode != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %s, cookies %v", res.Status, cookies)
	}
	c := cookies[0]
	if c.Name != sessionCookie || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/", c)
	}

	r := httptest.NewRequest("GET", "https://mail.example.test/", nil)
	r.AddCookie(c)
	res = do(mux, r)
	body, _ = io.ReadAll(res.Body)
	for _, want := range []string{`<script type="module" src="/parley/panel/parley-chat.js"></script>`, "<parley-chat></parley-chat>", "Alice Liddell"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the webmail page lacks %q", want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("webmail CSP %q", csp)
	}

	// The Authenticator recognises the cookie: Parley offers SASL EXTERNAL.
	ws := httptest.NewRequest("GET", "https://mail.example.test/parley/ws", nil)
	if _, err := auth.AuthenticateRequest(ws); err == nil {
		t.Error("AuthenticateRequest without a cookie succeeded")
	}
	ws.AddCookie(c)
	if addr, err := auth.AuthenticateRequest(ws); err != nil || addr != "alice@example.test" {
		t.Errorf("AuthenticateRequest = %q, %v; want alice@example.test", addr, err)
	}

	// Directory search for the add-contact dialog.
	s := httptest.NewRequest("GET", "https://mail.example.test/parley/api/search?q=e", nil)
	if res := do(mux, s); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("search without a session: %s, want 401", res.Status)
	}
	s.AddCookie(c)
	res = do(mux, s)
	var got struct {
		Results []struct {
			Address     string
			ChatEnabled bool `json:"chat_enabled"`
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	enabled := map[string]bool{}
	for _, e := range got.Results {
		enabled[e.Address] = e.ChatEnabled
	}
	if len(enabled) != 2 || !enabled["bob@example.test"] || enabled["dave@example.test"] {
		t.Errorf("search results %+v: want bob (chat enabled) and dave (not), and never the user herself", got.Results)
	}

	// The panel's files are mounted.
	res = do(mux, httptest.NewRequest("GET", "https://mail.example.test/parley/panel/parley-chat.js", nil))
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("panel module: %s %q", res.Status, res.Header.Get("Content-Type"))
	}

	// Logging out ends the session for the panel too.
	out := httptest.NewRequest("POST", "https://mail.example.test/logout", nil)
	out.AddCookie(c)
	do(mux, out)
	if _, err := auth.AuthenticateRequest(ws); err == nil {
		t.Error("the session survived logout")
	}
}
