package meeting

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

func TestHTTPErrorsAreClearJSON(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PasswordFailuresPerAddr = 2 })
	cases := []struct {
		name, method, path, user string
		body                     any
		status                   int
		code, text               string
	}{
		{"missing title", "POST", "/meetings/api/meetings", "alice@example.com", map[string]any{"password": "x"}, 400, "title_required", "title is required"},
		{"bad rrule", "POST", "/meetings/api/meetings", "alice@example.com",
			map[string]any{"title": "T", "schedule": map[string]any{"start": "2026-04-01T10:00", "end": "2026-04-01T11:00", "timeZone": "Europe/Paris", "rrule": "FREQ=WEEKLY;BYDAY=FUNDAY"}},
			400, "bad_rrule", "FUNDAY"},
		{"bad date", "POST", "/meetings/api/meetings", "alice@example.com",
			map[string]any{"title": "T", "schedule": map[string]any{"start": "tomorrow", "end": "2026-04-01T11:00"}}, 400, "bad_schedule", "tomorrow"},
		{"bad uploads", "POST", "/meetings/api/meetings", "alice@example.com", map[string]any{"title": "T", "uploads": "everyone"}, 400, "bad_request", "uploads"},
		{"unknown field", "POST", "/meetings/api/meetings", "alice@example.com", map[string]any{"title": "T", "colour": "red"}, 400, "bad_request", "colour"},
		{"not logged in", "POST", "/meetings/api/meetings", "", map[string]any{"title": "T"}, 401, "login_required", "log in"},
		{"form post", "POST", "/meetings/api/meetings", "alice@example.com", "title=T", 400, "bad_request", "application/json"},
		{"unknown token", "POST", "/meetings/api/join/nope", "", map[string]any{"name": "G"}, 404, "not_found", "no such meeting"},
		{"unknown token info", "GET", "/meetings/api/join/nope", "", nil, 404, "not_found", ""},
		{"no route", "GET", "/meetings/api/nothing", "", nil, 404, "not_found", ""},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, c.user, c.body)
		if c.name == "form post" {
			req, _ := http.NewRequest("POST", e.serve()+c.path, strings.NewReader("title=T"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Test-User", c.user)
			res, _ := http.DefaultClient.Do(req)
			res.Body.Close()
			if res.StatusCode != 400 {
				t.Errorf("form post: %d", res.StatusCode)
			}
			continue
		}
		msg, _ := r.body["error"].(map[string]any)["message"].(string)
		if r.status != c.status || r.code() != c.code || !strings.Contains(msg, c.text) {
			t.Errorf("%s: %d %s %q, want %d %s containing %q", c.name, r.status, r.code(), msg, c.status, c.code, c.text)
		}
	}

	// A meeting with a password.
	r := e.do("POST", "/meetings/api/meetings", "alice@example.com", map[string]any{"title": "Secret", "password": "pw", "allowGuests": true})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	token := strings.TrimPrefix(r.body["link"].(string), "/meetings/j/")
	if info := e.do("GET", "/meetings/api/join/"+token, "", nil); info.body["hasPassword"] != true || info.body["title"] != "Secret" {
		t.Errorf("join info: %s", info.raw)
	}
	for i := range 2 {
		if r := e.do("POST", "/meetings/api/join/"+token, "", map[string]any{"name": "G", "password": "no"}); r.status != 403 || r.code() != "wrong_password" {
			t.Errorf("wrong password %d: %d %s", i, r.status, r.raw)
		}
	}
	r = e.do("POST", "/meetings/api/join/"+token, "", map[string]any{"name": "G", "password": "pw"})
	if r.status != 429 || r.code() != "throttled" || r.header.Get("Retry-After") == "" {
		t.Errorf("throttled: %d %s %v", r.status, r.raw, r.header)
	}
	if r := e.do("POST", "/meetings/api/join/"+token, "", map[string]any{"name": "G", "password": "pw"}); r.code() != "throttled" {
		t.Errorf("still throttled: %s", r.raw)
	}
	// Not allowed, blacklisted and not admitted, over HTTP.
	m, _ := e.svc.ByToken(ctx, token)
	if r := e.do("PATCH", "/meetings/api/meetings/"+m.ID, "bob@example.com", map[string]any{"lobby": true}); r.status != 403 || r.code() != "not_allowed" {
		t.Errorf("bob patching: %d %s", r.status, r.raw)
	}
	tk := e.join(m, JoinRequest{User: alice})
	up := func(cred, name string) apiResp {
		return e.do("POST", "/meetings/api/meetings/"+m.ID+"/files?name="+name, "", "data", "X-Parley-Participant", cred, "Content-Type", "text/plain")
	}
	if r := up(tk.Credential, "virus.exe"); r.status != 415 || r.code() != "file_blocked" {
		t.Errorf("blacklisted: %d %s", r.status, r.raw)
	}
	if r := up("forged", "a.txt"); r.status != 401 || r.code() != "bad_credential" {
		t.Errorf("forged credential: %d %s", r.status, r.raw)
	}
	g := e.join(m, JoinRequest{Name: "G", Password: "pw", ClientAddr: "192.0.2.9"})
	if r := up(g.Credential, "a.txt"); r.status != 403 || r.code() != "not_allowed" {
		t.Errorf("guest upload: %d %s", r.status, r.raw)
	}
	if r := up(tk.Credential, "a.txt"); r.status != 201 || r.body["name"] != "a.txt" {
		t.Errorf("organizer upload: %d %s", r.status, r.raw)
	}
}

func TestHTTPMeetingLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/meetings/api/meetings", "alice@example.com", map[string]any{
		"title": "Weekly", "schedule": map[string]any{"start": "2026-03-09T10:00", "end": "2026-03-09T11:00", "timeZone": "Europe/Paris", "rrule": "FREQ=WEEKLY;COUNT=5"},
	})
	if r.status != 201 {
		t.Fatalf("create: %s", r.raw)
	}
	id := r.body["id"].(string)
	sched := r.body["schedule"].(map[string]any)
	if sched["startLocal"] != "2026-03-09T10:00" || sched["start"] != "2026-03-09T10:00:00+01:00" || r.body["next"] == nil || r.body["scheduleEnds"] == nil {
		t.Errorf("schedule out: %s", r.raw)
	}
	if r.body["uploads"] != "organizer" || r.body["endBehaviour"] != "archive" || r.body["attendeesCanStart"] != true {
		t.Errorf("defaults out: %s", r.raw)
	}
	r = e.do("PATCH", "/meetings/api/meetings/"+id, "alice@example.com", map[string]any{"uploads": "anyone", "lobby": true, "schedule": nil, "endBehaviour": "keep"})
	if r.status != 200 || r.body["uploads"] != "anyone" || r.body["schedule"] != nil || r.body["lobby"] != true {
		t.Errorf("patch: %s", r.raw)
	}
	list := e.do("GET", "/meetings/api/meetings", "alice@example.com", nil)
	if ms := list.body["meetings"].([]any); len(ms) != 1 {
		t.Errorf("list: %s", list.raw)
	}
	if r := e.do("GET", "/meetings/api/meetings/"+id, "alice@example.com", nil); r.body["usage"] == nil || r.body["isOrganizer"] != true {
		t.Errorf("get: %s", r.raw)
	}
	if r := e.do("GET", "/meetings/api/meetings/"+id, "bob@example.com", nil); r.status != 403 {
		t.Errorf("stranger get: %d", r.status)
	}
	if r := e.do("PUT", "/meetings/api/prefs", "bob@example.com", map[string]any{"microphone": "m1", "webcamQuality": "medium"}); r.status != 200 || r.body["webcamQuality"] != "medium" {
		t.Errorf("prefs: %s", r.raw)
	}
	r = e.do("POST", "/meetings/api/start", "bob@example.com", map[string]any{"contact": "carol@example.com", "room": "Quick call"})
	if r.status != 201 || !strings.Contains(r.body["message"].(string), r.body["link"].(string)) {
		t.Errorf("start: %s", r.raw)
	}
	if r := e.do("GET", "/meetings/api/participated", "carol@example.com", nil); len(r.body["meetings"].([]any)) != 1 {
		t.Errorf("carol's participated: %s", r.raw)
	}
	if r := e.do("DELETE", "/meetings/api/meetings/"+id, "bob@example.com", nil); r.status != 403 {
		t.Errorf("bob deleting: %d", r.status)
	}
	if r := e.do("DELETE", "/meetings/api/meetings/"+id, "alice@example.com", nil); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.raw)
	}
	// Pages are served.
	for _, p := range []string{"/meetings/", "/meetings/settings", "/meetings/j/abc", "/meetings/static/meetings.css", "/meetings/static/room.js"} {
		res, err := http.Get(e.serve() + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
}

// The guest cookie keeps a guest's identity across joins, and is signed.
func TestGuestCookie(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AllowGuests: ptr(true)})
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	join := func() map[string]any {
		req, _ := http.NewRequest("POST", e.serve()+"/meetings/api/join/"+m.Token, strings.NewReader(`{"name":"Gwen"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(res.Body)
		if err := jsonUnmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out["participant"].(map[string]any)
	}
	first, second := join(), join()
	if first["identity"] != second["identity"] || first["id"] == second["id"] {
		t.Errorf("identities: %v / %v", first["identity"], second["identity"])
	}
	u, _ := http.NewRequest("GET", e.serve()+"/meetings/api/join/"+m.Token, nil)
	cookies := jar.Cookies(u.URL)
	if len(cookies) != 1 || cookies[0].Name != "parley_guest" {
		t.Fatalf("cookies: %v", cookies)
	}
	// A forged cookie gives a new identity.
	v := cookies[0].Value
	forged := "someoneelse" + v[strings.IndexByte(v, '.'):]
	if _, ok := verifyGuest(e.svc.cfg.Secret, forged, e.clock.Now()); ok {
		t.Error("forged cookie verified")
	}
	if _, ok := verifyGuest(e.svc.cfg.Secret, v, e.clock.Now().Add(31*24*time.Hour)); ok {
		t.Error("expired cookie verified")
	}
}

// Settings changed mid-meeting reach every connected participant over the
// WebSocket at once, and take effect: a guest's refused upload succeeds
// after the organizer allows it; the lobby turned off admits its waiter.
func TestSettingsReachParticipantsOverWebSocket(t *testing.T) {
	e := newEnv(t)
	m := e.create(Change{AllowGuests: ptr(true), Lobby: ptr(true)})
	orgTk := e.join(m, JoinRequest{User: alice})
	org := e.dialWS(orgTk.Credential)
	if w := org.next("welcome"); w["participant"].(map[string]any)["role"] != "organizer" {
		t.Fatalf("welcome: %v", w)
	}
	gTk := e.join(m, JoinRequest{Name: "Gabe"})
	g := e.dialWS(gTk.Credential)
	if w := g.next("welcome"); w["participant"].(map[string]any)["state"] != "lobby" {
		t.Fatalf("guest welcome: %v", w)
	}
	lob := org.next("lobby")["lobby"].([]any)
	gid := lob[0].(map[string]any)["id"].(string)
	org.send(map[string]any{"type": "admit", "participant": gid, "ref": "a1"})
	if ok := org.next("ok"); ok["ref"] != "a1" {
		t.Errorf("ack: %v", ok)
	}
	if w := g.next("welcome"); w["participant"].(map[string]any)["state"] != "in" {
		t.Fatalf("after admit: %v", w)
	}
	// Chat both ways.
	g.send(map[string]any{"type": "chat", "body": "hi from the guest"})
	if msg := org.next("chat")["message"].(map[string]any); msg["body"] != "hi from the guest" || msg["name"] != "Gabe" {
		t.Errorf("chat: %v", msg)
	}
	// Upload refused, then allowed mid-meeting.
	up := func() apiResp {
		return e.do("POST", "/meetings/api/meetings/"+m.ID+"/files?name=notes.txt", "", "guest notes", "X-Parley-Participant", gTk.Credential, "Content-Type", "text/plain")
	}
	if r := up(); r.code() != "not_allowed" {
		t.Fatalf("guest upload under organizer-only: %s", r.raw)
	}
	if r := e.do("PATCH", "/meetings/api/meetings/"+m.ID, "alice@example.com", map[string]any{"uploads": "anyone"}); r.status != 200 {
		t.Fatal(r.raw)
	}
	for _, c := range []*wsClient{org, g} {
		if s := c.next("settings")["meeting"].(map[string]any); s["uploads"] != "anyone" {
			t.Errorf("settings event: %v", s)
		}
	}
	if r := up(); r.status != 201 {
		t.Fatalf("guest upload after the change: %s", r.raw)
	}
	if f := org.next("file.added")["file"].(map[string]any); f["name"] != "notes.txt" || f["uploaderName"] != "Gabe" {
		t.Errorf("file.added: %v", f)
	}
	// Commands the guest may not run are refused with a JSON error.
	g.send(map[string]any{"type": "mute", "participant": orgTk.Participant.ID, "ref": "m"})
	if e := g.next("error"); e["ref"] != "m" || e["error"].(map[string]any)["code"] != "not_allowed" {
		t.Errorf("guest muting: %v", e)
	}
	// A second guest waits in the lobby; turning the lobby off admits it.
	g2Tk := e.join(m, JoinRequest{Name: "Gia"})
	g2 := e.dialWS(g2Tk.Credential)
	g2.next("welcome")
	e.do("PATCH", "/meetings/api/meetings/"+m.ID, "alice@example.com", map[string]any{"lobby": false})
	if w := g2.next("welcome"); w["participant"].(map[string]any)["state"] != "in" {
		t.Errorf("after lobby off: %v", w)
	}
	// Guests disallowed: both are removed and their sockets closed.
	e.do("PATCH", "/meetings/api/meetings/"+m.ID, "alice@example.com", map[string]any{"allowGuests": false})
	st := g.next("state")
	if st["participant"].(map[string]any)["state"] != "removed" {
		t.Errorf("guest state: %v", st)
	}
	ctx2, cancel := contextWithTimeout(2 * time.Second)
	defer cancel()
	var v any
	err := wsjson.Read(ctx2, g.ws, &v)
	for err == nil {
		err = wsjson.Read(ctx2, g.ws, &v)
	}
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("guest socket: %v", err)
	}
	// A bad hello is refused.
	bad := e.dialWS("nonsense")
	if r := bad.next("error"); r["error"].(map[string]any)["code"] != "bad_credential" {
		t.Errorf("bad hello: %v", r)
	}
}

// A WebSocket client that stops reading is dropped; the others are not
// held up.
func TestSlowWebSocketDropped(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.QueueLength = 4 })
	m := e.create(Change{AllowGuests: ptr(true)})
	orgTk := e.join(m, JoinRequest{User: alice})
	org := e.dialWS(orgTk.Credential)
	org.next("welcome")
	slowTk := e.join(m, JoinRequest{Name: "Slow"})
	e.dialWS(slowTk.Credential) // reads nothing
	org.next("participant.joined")
	big := strings.Repeat("x", 3900)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.svc.Chat(ctx, orgTk.Credential, big); err != nil {
			t.Fatal(err)
		}
		org.next("chat")
		room, _ := e.svc.Room(ctx, m.ID)
		if len(room.Participants()) == 1 {
			return // dropped
		}
	}
	t.Fatal("the slow WebSocket was never dropped")
}
