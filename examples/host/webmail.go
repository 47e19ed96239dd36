package main

import (
	"context"
	"crypto/rand"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
)

// The toy webmail: a login form for the host's users, then a page that
// stands for a real webmail (an inbox placeholder) with the chat panel in
// its header. It shows the whole integration a mail host does for the
// panel: a session cookie of its own, an Authenticator that recognises
// that cookie on Parley's WebSocket (parley.RequestAuthenticator), and one
// script tag and one element in the page.

const (
	// sessionCookie's __Host- prefix makes browsers insist on Secure,
	// Path=/ and no Domain: no other host can plant or read it.
	sessionCookie = "__Host-webmail"
	sessionTTL    = 12 * time.Hour
)

// sessions are the logged-in webmail sessions, by random token.
type sessions struct {
	mu sync.Mutex
	m  map[string]webSession
}

type webSession struct {
	address string
	expires time.Time
}

func newSessions() *sessions { return &sessions{m: make(map[string]webSession)} }

func (s *sessions) create(address string) string {
	token := rand.Text()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ws := range s.m { // a toy's housekeeping: few sessions, swept on login
		if now.After(ws.expires) {
			delete(s.m, t)
		}
	}
	s.m[token] = webSession{address: address, expires: now.Add(sessionTTL)}
	return token
}

func (s *sessions) lookup(r *http.Request) (string, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, ok := s.m[c.Value]
	if !ok || time.Now().After(ws.expires) {
		return "", false
	}
	return ws.address, true
}

func (s *sessions) end(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.m, c.Value)
		s.mu.Unlock()
	}
}

// hostAuth is the directory's Authenticator plus the webmail session:
// with it Parley offers SASL EXTERNAL to the panel on the webmail's own
// origin, and the panel logs in without a second password.
type hostAuth struct {
	*memdir.Dir
	sessions *sessions
}

func (a hostAuth) AuthenticateRequest(r *http.Request) (string, error) {
	if addr, ok := a.sessions.lookup(r); ok {
		return addr, nil
	}
	return "", errors.New("no webmail session")
}

var _ parley.RequestAuthenticator = hostAuth{}

// hostPageCSP is the webmail's own policy: the panel's module and styles
// come from this origin, and so does its WebSocket.
const hostPageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

type webmail struct {
	dir      *memdir.Dir
	sessions *sessions
	domains  []string
	log      *slog.Logger
}

// mount puts the webmail and Parley (which serves the panel, under
// /parley/panel/) on mux.
func (wm *webmail) mount(mux *http.ServeMux, srv *parley.Server) {
	mux.Handle("/parley/", http.StripPrefix("/parley", srv.Handler()))
	mux.Handle("/.well-known/", srv.WellKnownHandler())
	mux.HandleFunc("GET /{$}", wm.home)
	mux.HandleFunc("POST /login", wm.login)
	mux.HandleFunc("POST /logout", wm.logout)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /webmail.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write([]byte(webmailCSS))
	})
}

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", hostPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (wm *webmail) home(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	addr, ok := wm.sessions.lookup(r)
	if !ok {
		loginPage.Execute(w, map[string]any{"Domains": strings.Join(wm.domains, ", "), "Error": r.URL.Query().Get("error") != ""})
		return
	}
	name := addr
	if e, err := wm.dir.Lookup(r.Context(), addr); err == nil && e.Name != "" {
		name = e.Name
	}
	webmailPage.Execute(w, map[string]any{"Name": name, "Address": addr})
}

// sameOrigin guards the forms against cross-site posts (SameSite=Strict
// already keeps the cookie off them).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser's cross-site form post
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (wm *webmail) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site login refused", http.StatusForbidden)
		return
	}
	addr := strings.ToLower(strings.TrimSpace(r.PostFormValue("address")))
	if !strings.Contains(addr, "@") && len(wm.domains) > 0 {
		addr += "@" + wm.domains[0]
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := wm.dir.CheckPassword(ctx, addr, r.PostFormValue("password")); err != nil {
		wm.log.Info("webmail login failed", "address", addr, "remote", r.RemoteAddr)
		http.Redirect(w, r, "/?error=1", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: wm.sessions.create(addr), Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (wm *webmail) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site logout refused", http.StatusForbidden)
		return
	}
	wm.sessions.end(r)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Parley example host — webmail login</title>
<link rel="stylesheet" href="/webmail.css">
</head>
<body class="login-page">
<main class="login-box">
  <h1>Examplemail</h1>
  <p class="sub">The Parley example host's toy webmail for {{.Domains}}</p>
  <form method="post" action="/login">
    <label>Email address <input name="address" type="text" autocomplete="username" required autofocus></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
    {{if .Error}}<p class="error" role="alert">Wrong address or password.</p>{{end}}
    <button type="submit">Log in</button>
  </form>
  <p class="hint">The demo users and their passwords are printed when the host starts.</p>
</main>
</body>
</html>
`))

var webmailPage = template.Must(template.New("webmail").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inbox — Examplemail</title>
<link rel="stylesheet" href="/webmail.css">
<script type="module" src="/parley/panel/parley-chat.js"></script>
</head>
<body>
<header class="top">
  <strong class="logo">Examplemail</strong>
  <input class="find" type="search" placeholder="Search mail" aria-label="Search mail">
  <span class="grow"></span>
  <parley-chat></parley-chat>
  <span class="user" title="{{.Address}}">{{.Name}}</span>
  <form method="post" action="/logout"><button type="submit">Log out</button></form>
</header>
<div class="main">
  <nav class="folders" aria-label="Folders">
    <a class="current" href="/">Inbox <b>3</b></a><a href="/">Sent</a><a href="/">Drafts</a><a href="/">Archive</a><a href="/">Trash</a>
  </nav>
  <section class="inbox" aria-label="Inbox">
    <h1>Inbox</h1>
    <ul>
      <li class="unread"><b>Quarterly figures</b><span>Bob Builder — the spreadsheet is attached, have a look before Monday…</span><time>09:12</time></li>
      <li class="unread"><b>Lunch on Friday?</b><span>Carol Danvers — there is a new place round the corner…</span><time>08:47</time></li>
      <li class="unread"><b>Your order has shipped</b><span>Shop — your parcel is on its way…</span><time>Yesterday</time></li>
      <li><b>Team meeting notes</b><span>Alice Liddell — notes from Tuesday's meeting…</span><time>Mon</time></li>
      <li><b>Welcome to Examplemail</b><span>Examplemail — chat with your colleagues from the chat icon at the top…</span><time>Jan 2</time></li>
    </ul>
  </section>
</div>
</body>
</html>
`))

const webmailCSS = `
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2937; background: #f3f4f6; }
.top { display: flex; align-items: center; gap: 12px; height: 56px; padding: 0 16px; background: #1e3a8a; color: #fff; }
.logo { font-size: 18px; }
.find { width: min(360px, 30vw); padding: 7px 10px; border: 0; border-radius: 6px; }
.grow { flex: 1; }
.user { font-size: 13px; opacity: .9; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 20vw; }
.top form { margin: 0; }
.top button { padding: 6px 10px; border: 1px solid rgb(255 255 255 / .5); border-radius: 6px; background: transparent; color: #fff; cursor: pointer; }
.main { display: flex; height: calc(100% - 56px); }
.folders { display: flex; flex-direction: column; width: 200px; padding: 12px 8px; background: #fff; border-right: 1px solid #e5e7eb; }
.folders a { display: flex; justify-content: space-between; padding: 8px 12px; border-radius: 6px; color: inherit; text-decoration: none; }
.folders a.current { background: #dbeafe; font-weight: 600; }
.inbox { flex: 1; padding: 16px 24px; overflow: auto; }
.inbox h1 { margin: 0 0 12px; font-size: 20px; }
.inbox ul { list-style: none; margin: 0; padding: 0; background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; }
.inbox li { display: grid; grid-template-columns: 220px 1fr auto; gap: 12px; padding: 12px 16px; border-bottom: 1px solid #f1f5f9; }
.inbox li span { color: #6b7280; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.inbox li b { font-weight: 500; }
.inbox li.unread b { font-weight: 700; }
.inbox time { color: #6b7280; font-size: 12px; }
parley-chat { color: #fff; --parley-top: 60px; }
.login-page { display: grid; place-items: center; }
.login-box { width: min(380px, 92vw); padding: 28px; background: #fff; border-radius: 12px; box-shadow: 0 8px 30px rgb(0 0 0 / .1); }
.login-box h1 { margin: 0; color: #1e3a8a; }
.login-box .sub, .login-box .hint { color: #6b7280; font-size: 13px; }
.login-box form { display: flex; flex-direction: column; gap: 12px; }
.login-box label { display: flex; flex-direction: column; gap: 4px; font-size: 13px; font-weight: 600; }
.login-box input { padding: 9px 10px; border: 1px solid #d1d5db; border-radius: 6px; font: inherit; }
.login-box button { padding: 10px; border: 0; border-radius: 6px; background: #1e3a8a; color: #fff; font: inherit; font-weight: 600; cursor: pointer; }
.error { color: #dc2626; margin: 0; }
@media (max-width: 700px) {
  .folders, .find, .user { display: none; }
  .inbox { padding: 12px; }
  .inbox li { grid-template-columns: 1fr auto; }
  .inbox li span { grid-column: 1 / -1; grid-row: 2; }
}
`
