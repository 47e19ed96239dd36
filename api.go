package parley

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/storage"
)

// apiUser returns the webmail user making r, answering 401 when there is
// none. The JSON endpoints serve the host's own pages: no CORS headers are
// sent, so other origins cannot read them.
func (s *Server) apiUser(w http.ResponseWriter, r *http.Request) (jid.JID, bool) {
	ra, ok := s.cfg.Authenticator.(account.RequestAuthenticator)
	if !ok {
		apiError(w, http.StatusNotImplemented, "the host has no webmail session hook (RequestAuthenticator)")
		return jid.JID{}, false
	}
	addr, err := ra.AuthenticateRequest(r)
	if err != nil || addr == "" {
		apiError(w, http.StatusUnauthorized, "log in to webmail first")
		return jid.JID{}, false
	}
	j, err := jid.Parse(addr)
	if err != nil || j.Local() == "" {
		apiError(w, http.StatusUnauthorized, "the webmail session names no user")
		return jid.JID{}, false
	}
	return j.Bare(), true
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func apiJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	json.NewEncoder(w).Encode(v)
}

// searchEntry is one directory hit for the panel's "Add a contact" and
// "Chat with..." boxes.
type searchEntry struct {
	Address     string `json:"address"`
	Name        string `json:"name"`
	Kind        string `json:"kind"` // "user" or "alias"
	ChatEnabled bool   `json:"chat_enabled"`
}

// serveSearch answers GET /api/search?q=...&limit=N: users and aliases of
// the caller's own domain whose name or address contains q. Users who have
// not enabled chat are listed (the panel shows them, in red) with
// chat_enabled false.
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	user, ok := s.apiUser(w, r)
	if !ok {
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		apiError(w, http.StatusBadRequest, "q is empty: type part of a name or address")
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	entries, err := s.dir.Search(r.Context(), user.Domain(), q, limit)
	if err != nil {
		s.log.Error("directory search", "user", user.String(), "err", err)
		apiError(w, http.StatusBadGateway, "the directory is unavailable; try again")
		return
	}
	out := make([]searchEntry, 0, len(entries))
	for _, e := range entries {
		if strings.EqualFold(e.Address, user.String()) {
			continue
		}
		out = append(out, searchEntry{Address: strings.ToLower(e.Address), Name: e.Name, Kind: e.Kind.String(), ChatEnabled: e.Kind == account.Alias || e.ChatEnabled})
	}
	apiJSON(w, map[string]any{"results": out})
}

// fileEntry is one file of the panel's "attachments" list.
type fileEntry struct {
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	SharedBy    string    `json:"shared_by"`
	SharedAt    time.Time `json:"shared_at"`
	URL         string    `json:"url"`
	Download    string    `json:"download"`
	Preview     string    `json:"preview"`
	Thumbnail   string    `json:"thumbnail,omitempty"`
}

// serveFiles answers GET /api/files?with=address: the files the caller
// and that contact exchanged, newest first.
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request) {
	user, ok := s.apiUser(w, r)
	if !ok {
		return
	}
	with, err := jid.Parse(r.URL.Query().Get("with"))
	if err != nil || with.Local() == "" {
		apiError(w, http.StatusBadRequest, "with must be a contact's address")
		return
	}
	list, err := s.files.Exchanged(r.Context(), user, with.Bare())
	if err != nil {
		s.log.Error("listing exchanged files", "user", user.String(), "err", err)
		apiError(w, http.StatusBadGateway, "the file list is unavailable; try again")
		return
	}
	out := make([]fileEntry, 0, len(list))
	for _, f := range list {
		u := s.files.URLs(f)
		out = append(out, fileEntry{Name: f.Name, Size: f.Size, ContentType: f.ContentType, SharedBy: f.SharedBy, SharedAt: f.SharedAt,
			URL: u.Get, Download: u.Download, Preview: u.Preview, Thumbnail: u.Thumb})
	}
	apiJSON(w, map[string]any{"files": out})
}

// serveLinkCard answers GET /api/linkcard?url=...: the title, description
// and image of a linked page (Open Graph), fetched and cached by the
// server, which refuses private addresses.
func (s *Server) serveLinkCard(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.apiUser(w, r); !ok {
		return
	}
	card, err := s.files.LinkCard(r.Context(), r.URL.Query().Get("url"))
	if err != nil {
		// No card is an ordinary answer, not a failure: the link stays.
		w.Header().Set("Cache-Control", "private, max-age=600")
		w.Header().Set("X-Parley-No-Card", err.Error())
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if card.Image != "" {
		// Shown from our origin, so the host's page needs no img-src for
		// the whole web, and the remote site never sees the reader.
		card.Image = s.publicURL(r) + "/api/linkcard/image?url=" + url.QueryEscape(card.Image)
	}
	w.Header().Set("Cache-Control", "private, max-age=600")
	apiJSON(w, card)
}

// serveCardImage answers GET /api/linkcard/image?url=...: a link card's
// picture, fetched by the server with the link-card safeguards and served
// only if it really is a PNG, JPEG, GIF or WebP image.
func (s *Server) serveCardImage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.apiUser(w, r); !ok {
		return
	}
	b, ct, err := s.files.CardImage(r.Context(), r.URL.Query().Get("url"))
	if err != nil {
		w.Header().Set("Cache-Control", "private, max-age=600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(b)
}

// Paging of GET /api/conversations: limit's default and maximum.
const (
	conversationsPage    = 20
	conversationsPageMax = 100
)

// serveConversations answers GET /api/conversations?with=address: the
// caller's past chat sessions with a contact, newest first, each with its
// time span and archive ids, so the panel can list them and open one
// (a MAM query between the ids). It pages: limit (1 to 100, default 20)
// sessions at a time, and "next", when older sessions exist, is the
// cursor to pass as before= for the following page ("" on the last).
func (s *Server) serveConversations(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	user, ok := s.apiUser(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	with, err := jid.Parse(q.Get("with"))
	if err != nil || with.Local() == "" {
		apiError(w, http.StatusBadRequest, "with must be a contact's address")
		return
	}
	limit := conversationsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > conversationsPageMax {
			apiError(w, http.StatusBadRequest, "limit must be a number from 1 to 100")
			return
		}
		limit = n
	}
	before := q.Get("before")
	convs, next, err := s.chat.ConversationsBefore(r.Context(), user, with.Bare(), before, limit)
	if err != nil {
		if before != "" && errors.Is(err, storage.ErrNotFound) {
			apiError(w, http.StatusBadRequest, "before is not a cursor of this conversation: use the next value of the previous page")
			return
		}
		s.log.Error("listing conversations", "user", user.String(), "err", err)
		apiError(w, http.StatusBadGateway, "the history is unavailable; try again")
		return
	}
	type conv struct {
		Start    time.Time `json:"start"`
		End      time.Time `json:"end"`
		FirstID  string    `json:"first_id"`
		LastID   string    `json:"last_id"`
		Messages int       `json:"messages"`
		Preview  string    `json:"preview"`
	}
	out := make([]conv, 0, len(convs))
	for _, c := range convs {
		out = append(out, conv{c.Start, c.End, c.FirstID, c.LastID, c.Messages, c.Preview})
	}
	apiJSON(w, map[string]any{"conversations": out, "next": next})
}
