package parley

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
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
	w.Header().Set("Cache-Control", "no-store")
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
