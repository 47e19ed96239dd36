package meeting

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/web"
)

// Handler returns the meetings' web pages and JSON API, to mount where
// its paths (all under /meetings/) reach it; with a prefix, strip it:
//
//	mux.Handle("/parley/", http.StripPrefix("/parley", svc.Handler()))
//
// Pages: /meetings/ (my and participated meetings), /meetings/settings
// (?id=), /meetings/j/{token} (join, lobby and the meeting room).
//
// API (JSON; errors are {"error":{"code","message"}} with the codes
// listed with the package's errors):
//
//	GET    /meetings/api/me                        who is logged in
//	GET    /meetings/api/meetings                  my meetings (cards)
//	POST   /meetings/api/meetings                  create
//	GET    /meetings/api/meetings/{id}             one meeting, with file usage
//	PATCH  /meetings/api/meetings/{id}             change settings
//	DELETE /meetings/api/meetings/{id}             delete
//	GET    /meetings/api/participated              participated meetings
//	GET    /meetings/api/meetings/{id}/chat        chat history (?after=seq)
//	DELETE /meetings/api/meetings/{id}/chat        delete all chat
//	GET    /meetings/api/meetings/{id}/files       shared files
//	POST   /meetings/api/meetings/{id}/files       upload (?name=; the body is the file)
//	GET    /meetings/api/meetings/{id}/files/{fid} download
//	DELETE /meetings/api/meetings/{id}/files/{fid} delete a file
//	GET    /meetings/api/prefs, PUT                device preferences
//	GET    /meetings/api/join/{token}              what the join page shows
//	POST   /meetings/api/join/{token}              join: {name, password}
//	POST   /meetings/api/start                     StartFromChat: {contact, room, call: ""|"audio"|"video"}
//	GET    /meetings/api/ws                        the participant WebSocket
//
// Users are who Config.Identify says; participants send their credential
// in the X-Parley-Participant header (or ?p= on downloads). Requests that
// change something must send JSON or that header, which a cross-site form
// cannot.
func (s *Service) Handler() http.Handler { return s.handler }

func (s *Service) newHandler() (http.Handler, error) {
	pages := s.cfg.Pages
	if pages == nil {
		sub, err := fs.Sub(web.Meetings, "meetings")
		if err != nil {
			return nil, fmt.Errorf("meeting: embedded pages: %w", err)
		}
		pages = sub
	}
	mux := http.NewServeMux()
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { servePage(w, r, pages, name) }
	}
	mux.HandleFunc("GET /meetings/{$}", page("index.html"))
	mux.HandleFunc("GET /meetings/settings", page("settings.html"))
	mux.HandleFunc("GET /meetings/j/{token}", page("room.html"))
	mux.HandleFunc("GET /meetings/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if !strings.HasSuffix(name, ".css") && !strings.HasSuffix(name, ".js") && !strings.HasSuffix(name, ".svg") {
			http.NotFound(w, r)
			return
		}
		servePage(w, r, pages, name)
	})

	mux.HandleFunc("GET /meetings/api/me", s.apiMe)
	mux.HandleFunc("GET /meetings/api/meetings", s.user(s.apiMine))
	mux.HandleFunc("POST /meetings/api/meetings", s.user(s.apiCreate))
	mux.HandleFunc("GET /meetings/api/meetings/{id}", s.apiGet)
	mux.HandleFunc("PATCH /meetings/api/meetings/{id}", s.user(s.apiUpdate))
	mux.HandleFunc("DELETE /meetings/api/meetings/{id}", s.user(s.apiDelete))
	mux.HandleFunc("GET /meetings/api/participated", s.user(s.apiParticipated))
	mux.HandleFunc("GET /meetings/api/meetings/{id}/chat", s.apiHistory)
	mux.HandleFunc("DELETE /meetings/api/meetings/{id}/chat", s.apiClearChat)
	mux.HandleFunc("GET /meetings/api/meetings/{id}/files", s.apiFiles)
	mux.HandleFunc("POST /meetings/api/meetings/{id}/files", s.apiUpload)
	mux.HandleFunc("GET /meetings/api/meetings/{id}/files/{fid}", s.apiDownload)
	mux.HandleFunc("DELETE /meetings/api/meetings/{id}/files/{fid}", s.apiDeleteFile)
	mux.HandleFunc("GET /meetings/api/prefs", s.user(s.apiPrefs))
	mux.HandleFunc("PUT /meetings/api/prefs", s.user(s.apiSetPrefs))
	mux.HandleFunc("GET /meetings/api/join/{token}", s.apiJoinInfo)
	mux.HandleFunc("POST /meetings/api/join/{token}", s.apiJoin)
	mux.HandleFunc("POST /meetings/api/start", s.user(s.apiStart))
	mux.HandleFunc("GET /meetings/api/ws", s.serveWS)
	mux.HandleFunc("/meetings/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no such API endpoint: %s %s", errNoRoute, r.Method, r.URL.Path))
	})
	return mux, nil
}

var errNoRoute = errors.New("meeting: not found")

// pageCSP governs the meeting pages: scripts only from the handler, no
// inline script, connections (the API and WebSocket) to the same origin,
// media from blob: URLs (the media layer's streams), and framing only by
// the webmail on the same origin (the minimisable meeting window).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

func servePage(w http.ResponseWriter, r *http.Request, pages fs.FS, name string) {
	b, err := fs.ReadFile(pages, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(name[strings.LastIndexByte(name, '.'):])
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if strings.HasSuffix(name, ".html") {
		w.Header().Set("Content-Security-Policy", pageCSP)
		w.Header().Set("Referrer-Policy", "no-referrer") // the link token is in the URL
	}
	w.Write(b)
}

// --- errors ---

// errorCodes maps the package's errors to HTTP statuses and stable codes.
var errorCodes = []struct {
	err    error
	status int
	code   string
}{
	{ErrNotFound, http.StatusNotFound, "not_found"},
	{errNoRoute, http.StatusNotFound, "not_found"},
	{ErrTitleRequired, http.StatusBadRequest, "title_required"},
	{ErrBadRRule, http.StatusBadRequest, "bad_rrule"},
	{ErrBadSchedule, http.StatusBadRequest, "bad_schedule"},
	{ErrBadRequest, http.StatusBadRequest, "bad_request"},
	{ErrWrongPassword, http.StatusForbidden, "wrong_password"},
	{ErrThrottled, http.StatusTooManyRequests, "throttled"},
	{ErrLoginRequired, http.StatusUnauthorized, "login_required"},
	{ErrNameRequired, http.StatusBadRequest, "name_required"},
	{ErrNotAllowed, http.StatusForbidden, "not_allowed"},
	{ErrNotAdmitted, http.StatusForbidden, "not_admitted"},
	{ErrBadCredential, http.StatusUnauthorized, "bad_credential"},
	{ErrArchived, http.StatusConflict, "archived"},
	{ErrFileBlocked, http.StatusUnsupportedMediaType, "file_blocked"},
	{ErrFileTooLarge, http.StatusRequestEntityTooLarge, "file_too_large"},
	{ErrFilesDisabled, http.StatusNotImplemented, "files_disabled"},
	{ErrClosed, http.StatusServiceUnavailable, "closed"},
}

// ErrorCode returns the stable code of err (as in the HTTP API's
// errors), or "internal".
func ErrorCode(err error) string {
	_, code := classify(err)
	return code
}

func classify(err error) (int, string) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func errorBody(err error) apiError {
	_, code := classify(err)
	msg := err.Error()
	if code == "internal" {
		msg = "internal error"
	}
	return apiError{Code: code, Message: strings.TrimPrefix(msg, "meeting: ")}
}

func writeError(w http.ResponseWriter, err error) {
	status, _ := classify(err)
	var te *throttledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.Itoa(int(te.after.Seconds())+1))
	}
	writeJSON(w, status, map[string]apiError{"error": errorBody(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readJSON decodes a JSON body of at most 64 KiB. It insists on a JSON
// content type: a cross-site form cannot send one.
func readJSON(r *http.Request, v any) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		return fmt.Errorf("%w: send application/json", ErrBadRequest)
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

// --- identities ---

func (s *Service) identify(r *http.Request) (jid.JID, bool) {
	if s.cfg.Identify == nil {
		return jid.JID{}, false
	}
	u, ok := s.cfg.Identify(r)
	if !ok || u.IsZero() || u.Local() == "" {
		return jid.JID{}, false
	}
	return u.Bare(), true
}

func (s *Service) user(h func(w http.ResponseWriter, r *http.Request, u jid.JID)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.identify(r)
		if !ok {
			writeError(w, fmt.Errorf("%w: log in first", ErrLoginRequired))
			return
		}
		h(w, r, u)
	}
}

func (s *Service) accessOf(r *http.Request) Access {
	u, _ := s.identify(r)
	cred := r.Header.Get("X-Parley-Participant")
	if cred == "" && r.Method == http.MethodGet {
		cred = r.URL.Query().Get("p")
	}
	return Access{User: u, Credential: cred}
}

// --- JSON views ---

type scheduleJSON struct {
	// Start and End are RFC 3339, or wall-clock "2006-01-02T15:04" in
	// TimeZone (what a datetime-local input gives).
	Start    string `json:"start"`
	End      string `json:"end"`
	TimeZone string `json:"timeZone,omitempty"`
	RRule    string `json:"rrule,omitempty"`
	// Out only: wall-clock times in TimeZone, for forms.
	StartLocal string `json:"startLocal,omitempty"`
	EndLocal   string `json:"endLocal,omitempty"`
}

func parseWhen(v string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: %q is not a date and time", ErrBadSchedule, v)
}

func (j scheduleJSON) schedule() (*Schedule, error) {
	sc := &Schedule{TimeZone: strings.TrimSpace(j.TimeZone), RRule: strings.TrimSpace(j.RRule)}
	loc, err := sc.location()
	if err != nil {
		return nil, err
	}
	if j.Start == "" || j.End == "" {
		return nil, fmt.Errorf("%w: start and end are required", ErrBadSchedule)
	}
	if sc.Start, err = parseWhen(j.Start, loc); err != nil {
		return nil, err
	}
	if sc.End, err = parseWhen(j.End, loc); err != nil {
		return nil, err
	}
	return sc, nil
}

func scheduleOut(sc *Schedule) *scheduleJSON {
	if sc == nil {
		return nil
	}
	loc, err := sc.location()
	if err != nil {
		loc = time.UTC
	}
	const wall = "2006-01-02T15:04"
	return &scheduleJSON{
		Start: sc.Start.In(loc).Format(time.RFC3339), End: sc.End.In(loc).Format(time.RFC3339),
		TimeZone: sc.TimeZone, RRule: sc.RRule,
		StartLocal: sc.Start.In(loc).Format(wall), EndLocal: sc.End.In(loc).Format(wall),
	}
}

type changeJSON struct {
	Title             *string         `json:"title"`
	Password          *string         `json:"password"`
	AllowGuests       *bool           `json:"allowGuests"`
	AttendeesCanStart *bool           `json:"attendeesCanStart"`
	Uploads           *Uploads        `json:"uploads"`
	Lobby             *bool           `json:"lobby"`
	Recording         *bool           `json:"recording"`
	Schedule          json.RawMessage `json:"schedule"` // null removes it
	EndBehaviour      *EndBehaviour   `json:"endBehaviour"`
}

func (j changeJSON) change() (Change, error) {
	c := Change{Title: j.Title, Password: j.Password, AllowGuests: j.AllowGuests,
		AttendeesCanStart: j.AttendeesCanStart, Uploads: j.Uploads, Lobby: j.Lobby,
		Recording: j.Recording, EndBehaviour: j.EndBehaviour}
	switch raw := strings.TrimSpace(string(j.Schedule)); raw {
	case "":
	case "null":
		c.ClearSchedule = true
	default:
		var sj scheduleJSON
		if err := json.Unmarshal(j.Schedule, &sj); err != nil {
			return c, fmt.Errorf("%w: schedule: %v", ErrBadSchedule, err)
		}
		sc, err := sj.schedule()
		if err != nil {
			return c, err
		}
		c.Schedule = sc
	}
	return c, nil
}

type occurrenceJSON struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

type meetingJSON struct {
	ID                string          `json:"id"`
	Title             string          `json:"title"`
	Organizer         string          `json:"organizer"`
	Created           time.Time       `json:"created"`
	Version           uint64          `json:"version"`
	Link              string          `json:"link"`
	AllowGuests       bool            `json:"allowGuests"`
	AttendeesCanStart bool            `json:"attendeesCanStart"`
	Uploads           Uploads         `json:"uploads"`
	Lobby             bool            `json:"lobby"`
	Recording         bool            `json:"recording"`
	Schedule          *scheduleJSON   `json:"schedule"`
	EndBehaviour      EndBehaviour    `json:"endBehaviour"`
	HasPassword       bool            `json:"hasPassword"`
	Archived          bool            `json:"archived"`
	AppointmentID     string          `json:"appointmentId,omitempty"`
	Next              *occurrenceJSON `json:"next,omitempty"`
	ScheduleEnds      *time.Time      `json:"scheduleEnds,omitempty"`
	Usage             *Usage          `json:"usage,omitempty"`
	IsOrganizer       bool            `json:"isOrganizer"`
}

func (s *Service) meetingOut(m Meeting, viewer jid.JID) meetingJSON {
	j := meetingJSON{
		ID: m.ID, Title: m.Title, Organizer: m.Organizer.Address(), Created: m.Created,
		Version: m.Version, Link: m.Link, AllowGuests: m.AllowGuests,
		AttendeesCanStart: m.AttendeesCanStart, Uploads: m.Uploads, Lobby: m.Lobby,
		Recording: m.Recording, Schedule: scheduleOut(m.Schedule), EndBehaviour: m.EndBehaviour,
		HasPassword: m.HasPassword, Archived: m.Archived,
		IsOrganizer: !viewer.IsZero() && viewer.Address() == m.Organizer.Address(),
	}
	if j.IsOrganizer {
		j.AppointmentID = m.AppointmentID
	}
	if sc := m.Schedule; sc != nil {
		if start, end, ok := sc.Next(s.now()); ok {
			j.Next = &occurrenceJSON{start, end}
		}
		if end, ok := sc.Ends(); ok {
			j.ScheduleEnds = &end
		}
	}
	return j
}

type participantJSON struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	User     string    `json:"user,omitempty"`
	Identity string    `json:"identity"`
	Guest    bool      `json:"guest"`
	State    State     `json:"state"`
	Muted    bool      `json:"muted"`
	Present  bool      `json:"present"`
	Joined   time.Time `json:"joined"`
}

func participantOut(p Participant) participantJSON {
	j := participantJSON{ID: p.ID, Name: p.Name, Role: p.Role, Identity: p.Identity, Guest: p.Guest(),
		State: p.State, Muted: p.Muted, Present: p.Present, Joined: p.Joined}
	if !p.User.IsZero() {
		j.User = p.User.Address()
	}
	return j
}

func participantsOut(ps []Participant) []participantJSON {
	out := make([]participantJSON, len(ps))
	for i, p := range ps {
		out[i] = participantOut(p)
	}
	return out
}

// --- handlers ---

func (s *Service) apiMe(w http.ResponseWriter, r *http.Request) {
	u, ok := s.identify(r)
	out := map[string]any{"authenticated": ok}
	if ok {
		out["user"] = u.Address()
		out["name"] = u.Local()
		if s.cfg.DisplayName != nil {
			if n := strings.TrimSpace(s.cfg.DisplayName(r.Context(), u)); n != "" {
				out["name"] = n
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) apiMine(w http.ResponseWriter, r *http.Request, u jid.JID) {
	ms, err := s.Mine(r.Context(), u)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]meetingJSON, len(ms))
	for i, m := range ms {
		out[i] = s.meetingOut(m, u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"meetings": out})
}

func (s *Service) apiCreate(w http.ResponseWriter, r *http.Request, u jid.JID) {
	var j changeJSON
	if err := readJSON(r, &j); err != nil {
		writeError(w, err)
		return
	}
	c, err := j.change()
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := s.Create(r.Context(), u, c)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.meetingOut(m, u))
}

func (s *Service) apiGet(w http.ResponseWriter, r *http.Request) {
	a := s.accessOf(r)
	id := r.PathValue("id")
	if _, _, err := s.access(r.Context(), a, id); err != nil {
		writeError(w, err)
		return
	}
	m, err := s.Meeting(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	out := s.meetingOut(m, a.User)
	if usage, err := s.Usage(r.Context(), a, id); err == nil {
		out.Usage = &usage
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) apiUpdate(w http.ResponseWriter, r *http.Request, u jid.JID) {
	var j changeJSON
	if err := readJSON(r, &j); err != nil {
		writeError(w, err)
		return
	}
	c, err := j.change()
	if err != nil {
		writeError(w, err)
		return
	}
	m, err := s.Update(r.Context(), u, r.PathValue("id"), c)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.meetingOut(m, u))
}

func (s *Service) apiDelete(w http.ResponseWriter, r *http.Request, u jid.JID) {
	if err := s.Delete(r.Context(), u, r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) apiParticipated(w http.ResponseWriter, r *http.Request, u jid.JID) {
	ps, err := s.Participated(r.Context(), u)
	if err != nil {
		writeError(w, err)
		return
	}
	type item struct {
		meetingJSON
		First   time.Time `json:"first"`
		Last    time.Time `json:"last"`
		Invited bool      `json:"invited"`
	}
	out := make([]item, len(ps))
	for i, p := range ps {
		out[i] = item{s.meetingOut(p.Meeting, u), p.First, p.Last, p.Invited}
	}
	writeJSON(w, http.StatusOK, map[string]any{"meetings": out})
}

func (s *Service) apiHistory(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	max, _ := strconv.Atoi(r.URL.Query().Get("max"))
	msgs, err := s.History(r.Context(), s.accessOf(r), r.PathValue("id"), after, max)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

func (s *Service) apiClearChat(w http.ResponseWriter, r *http.Request) {
	if err := s.ClearChat(r.Context(), s.accessOf(r), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) apiFiles(w http.ResponseWriter, r *http.Request) {
	fs, err := s.Files(r.Context(), s.accessOf(r), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	u := Usage{Files: len(fs)}
	for _, f := range fs {
		u.Bytes += f.Size
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": fs, "usage": u})
}

func (s *Service) apiUpload(w http.ResponseWriter, r *http.Request) {
	cred := r.Header.Get("X-Parley-Participant")
	if cred == "" {
		writeError(w, fmt.Errorf("%w: uploads need the X-Parley-Participant header", ErrBadCredential))
		return
	}
	// The credential must belong to this meeting.
	if p, err := s.Authorize(r.Context(), cred); err != nil || p.MeetingID != r.PathValue("id") {
		if err == nil {
			err = ErrBadCredential
		}
		writeError(w, err)
		return
	}
	if r.ContentLength > s.cfg.MaxFileSize {
		writeError(w, fmt.Errorf("%w: the limit is %d bytes", ErrFileTooLarge, s.cfg.MaxFileSize))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxFileSize+1)
	f, err := s.Upload(r.Context(), cred, r.URL.Query().Get("name"), r.Header.Get("Content-Type"), body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = fmt.Errorf("%w: the limit is %d bytes", ErrFileTooLarge, s.cfg.MaxFileSize)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (s *Service) apiDownload(w http.ResponseWriter, r *http.Request) {
	f, rc, err := s.OpenFile(r.Context(), s.accessOf(r), r.PathValue("id"), r.PathValue("fid"))
	if err != nil {
		writeError(w, err)
		return
	}
	defer rc.Close()
	// Always a download, never rendered on our origin: an uploaded
	// HTML file must not run as the meeting page.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	io.Copy(w, rc)
}

func (s *Service) apiDeleteFile(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteFile(r.Context(), s.accessOf(r), r.PathValue("id"), r.PathValue("fid")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) apiPrefs(w http.ResponseWriter, r *http.Request, u jid.JID) {
	p, err := s.Prefs(r.Context(), u)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Service) apiSetPrefs(w http.ResponseWriter, r *http.Request, u jid.JID) {
	var p DevicePrefs
	if err := readJSON(r, &p); err != nil {
		writeError(w, err)
		return
	}
	if err := s.SetPrefs(r.Context(), u, p); err != nil {
		writeError(w, err)
		return
	}
	p, _ = s.Prefs(r.Context(), u)
	writeJSON(w, http.StatusOK, p)
}

func (s *Service) apiJoinInfo(w http.ResponseWriter, r *http.Request) {
	m, err := s.ByToken(r.Context(), r.PathValue("token"))
	if err != nil {
		writeError(w, err)
		return
	}
	u, ok := s.identify(r)
	out := map[string]any{
		"id": m.ID, "title": m.Title, "hasPassword": m.HasPassword, "allowGuests": m.AllowGuests,
		"lobby": m.Lobby, "archived": m.Archived, "authenticated": ok,
		"isOrganizer": ok && u.Address() == m.Organizer.Address(),
		"schedule":    scheduleOut(m.Schedule),
	}
	if ok {
		out["user"] = u.Address()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) apiJoin(w http.ResponseWriter, r *http.Request) {
	var j struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := readJSON(r, &j); err != nil {
		writeError(w, err)
		return
	}
	u, _ := s.identify(r)
	req := JoinRequest{User: u, Name: j.Name, Password: j.Password, ClientAddr: s.cfg.ClientAddr(r)}
	if c, err := r.Cookie(s.cfg.GuestCookie); err == nil && u.IsZero() {
		if id, ok := verifyGuest(s.cfg.Secret, c.Value, s.now()); ok {
			req.GuestID = id
		}
	}
	t, err := s.Join(r.Context(), r.PathValue("token"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	if t.GuestID != "" {
		// MaxAge rather than Expires: the browser counts from its own
		// clock. The path defaults to the join API's, the only place the
		// cookie is read, wherever the host mounted the handler.
		exp := s.now().Add(s.cfg.GuestTTL)
		http.SetCookie(w, &http.Cookie{
			Name: s.cfg.GuestCookie, Value: signGuest(s.cfg.Secret, t.GuestID, exp),
			MaxAge: int(s.cfg.GuestTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
			Secure: r.TLS != nil || s.cfg.SecureCookies,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"credential":  t.Credential,
		"participant": participantOut(t.Participant),
	})
}

func (s *Service) apiStart(w http.ResponseWriter, r *http.Request, u jid.JID) {
	var j struct {
		Contact string    `json:"contact"`
		Room    string    `json:"room"`
		Call    CallMedia `json:"call"`
	}
	if err := readJSON(r, &j); err != nil {
		writeError(w, err)
		return
	}
	contact, err := jid.Parse(strings.TrimSpace(j.Contact))
	if err != nil {
		writeError(w, fmt.Errorf("%w: contact: %v", ErrBadRequest, err))
		return
	}
	st, err := s.StartFromChat(r.Context(), u, contact.Bare(), ChatStart{Room: j.Room, Call: j.Call})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"meeting": s.meetingOut(st.Meeting, u), "link": st.Link, "message": st.Message, "call": st.Call})
}
