package parley_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/meeting"
)

// mediaClient is a participant on the signalling WebSocket, without
// media: enough to see what the SFU says.
type mediaClient struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan map[string]any
}

func joinMedia(t *testing.T, url, credential string) (*mediaClient, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/parley/media/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &mediaClient{t: t, conn: conn, msgs: make(chan map[string]any, 100)}
	t.Cleanup(func() { conn.CloseNow() })
	b, _ := json.Marshal(map[string]string{"type": "join", "credential": credential})
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.msgs)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			c.msgs <- m
		}
	}()
	return c, c.wait(func(m map[string]any) bool { return m["type"] == "joined" || m["type"] == "error" })
}

// wait returns the first message that matches, failing after 5 s.
func (c *mediaClient) wait(match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatal("the SFU closed the WebSocket")
			}
			if match(m) {
				return m
			}
		case <-deadline:
			c.t.Fatal("no such message within 5 s")
		}
	}
}

func event(name, participant string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		return m["type"] == "event" && m["event"] == name && (participant == "" || m["participant"] == participant)
	}
}

// TestMediaFollowsMeeting: meeting credentials join the SFU with the
// meeting's roles; a moderator's mute and removal in the meeting are
// enforced in the SFU; recordings become meeting files.
func TestMediaFollowsMeeting(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@example.com", "Alice", "pw", true)
	d.AddUser("bob@example.com", "Bob", "pw", true)
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: sessionAuth{d},
		AllowUnencrypted: true, DataDir: t.TempDir(), MediaUDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if s.Media() == nil || s.Media().UDPAddr() == nil {
		t.Fatal("no SFU")
	}
	mux := http.NewServeMux()
	mux.Handle("/parley/", http.StripPrefix("/parley", s.Handler()))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	// The meeting pages learn where the SFU is.
	res, err := http.Get(hs.URL + "/parley/meetings/static/media-config.js")
	if err != nil {
		t.Fatal(err)
	}
	cfgJS, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(cfgJS), `"signalling": "../media/ws"`) {
		t.Errorf("media-config.js: %s", cfgJS)
	}

	ctx := context.Background()
	alice, bob := jid.MustParse("alice@example.com"), jid.MustParse("bob@example.com")
	m, err := s.Meetings().Create(ctx, alice, meeting.Change{Title: mptr("Media")})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := s.Meetings().Join(ctx, m.Token, meeting.JoinRequest{User: alice})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := s.Meetings().Join(ctx, m.Token, meeting.JoinRequest{User: bob})
	if err != nil {
		t.Fatal(err)
	}
	// Present in the meeting: the meeting WebSocket.
	for _, cred := range []string{ta.Credential, tb.Credential} {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ws, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/parley/meetings/api/ws", nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		b, _ := json.Marshal(map[string]string{"type": "hello", "credential": cred})
		ws.Write(ctx, websocket.MessageText, b)
		go func() {
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	waitMedia(t, func() bool { return len(mustRoom(t, s, m.ID).Participants()) == 2 })

	if _, msg := joinMedia(t, hs.URL, "not a credential"); msg["type"] != "error" || msg["code"] != "unauthorized" {
		t.Fatalf("a bad credential: %v", msg)
	}
	ca, joined := joinMedia(t, hs.URL, ta.Credential)
	if joined["room"] != m.ID || joined["participant"] != ta.Participant.ID || joined["role"] != "moderator" || joined["name"] != "Alice" { // the directory name
		t.Fatalf("alice joined: %v", joined)
	}
	if lim, _ := joined["limits"].(map[string]any); lim["recording"] == true {
		t.Errorf("recording allowed although the meeting does not allow it: %v", lim)
	}
	cb, joined := joinMedia(t, hs.URL, tb.Credential)
	if joined["role"] != "participant" || joined["participant"] != tb.Participant.ID {
		t.Fatalf("bob joined: %v", joined)
	}

	// A moderator mutes Bob in the meeting: the SFU blocks his mic.
	if err := s.Meetings().Mute(ctx, ta.Credential, tb.Participant.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mediaClient{ca, cb} {
		e := c.wait(event("mute", tb.Participant.ID))
		if e["source"] != "mic" || e["muted"] != true || e["blocked"] != true {
			t.Errorf("mute event: %v", e)
		}
	}
	ps, _ := s.Media().Participants(m.ID)
	if len(ps) != 2 {
		t.Fatalf("media participants: %+v", ps)
	}
	// He unmutes himself in the meeting: the block is lifted.
	if err := s.Meetings().Unmute(ctx, tb.Credential); err != nil {
		t.Fatal(err)
	}
	ca.wait(func(m map[string]any) bool { return event("mute", tb.Participant.ID)(m) && m["blocked"] != true })

	// Recording: refused while the meeting does not allow it.
	if err := s.Media().SetRecording(m.ID, true); err == nil {
		t.Error("recording started in a meeting that does not allow it")
	}

	// The moderator removes Bob: the SFU disconnects him.
	if err := s.Meetings().Remove(ctx, ta.Credential, tb.Participant.ID); err != nil {
		t.Fatal(err)
	}
	if r := cb.wait(func(m map[string]any) bool { return m["type"] == "removed" }); r["reason"] != "removed" {
		t.Errorf("removed: %v", r)
	}
	ca.wait(event("participantLeft", tb.Participant.ID))
}

// TestRecordingIsMeetingFile: what the SFU records is stored as a file of
// the meeting (meeting.Service.AddFile), listed and readable like an
// upload, and announced to everyone in the meeting with file.added.
func TestRecordingIsMeetingFile(t *testing.T) {
	d := memdir.New()
	d.AddUser("alice@example.com", "Alice", "pw", true)
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d,
		AllowUnencrypted: true, DataDir: t.TempDir(), MediaUDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/parley/", http.StripPrefix("/parley", s.Handler()))
	hs := httptest.NewServer(mux)
	defer hs.Close()
	ctx := context.Background()
	alice := jid.MustParse("alice@example.com")
	yes := true
	m, err := s.Meetings().Create(ctx, alice, meeting.Change{Title: mptr("Recorded"), Recording: &yes})
	if err != nil {
		t.Fatal(err)
	}
	// Alice is in the meeting, on its WebSocket.
	ta, err := s.Meetings().Join(ctx, m.Token, meeting.JoinRequest{User: alice})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ws, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/parley/meetings/api/ws", nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	hello, _ := json.Marshal(map[string]string{"type": "hello", "credential": ta.Credential})
	ws.Write(ctx, websocket.MessageText, hello)
	added := make(chan map[string]any, 1)
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var ev map[string]any
			json.Unmarshal(b, &ev)
			if ev["type"] == "file.added" {
				added <- ev
			}
		}
	}()
	waitMedia(t, func() bool { return len(mustRoom(t, s, m.ID).Participants()) == 1 })

	sink := parley.RecordingSinkForTest(s)
	w, err := sink.Create(ctx, media.RecordingInfo{Room: m.ID, Participant: "p1", Name: "Alice / Liddell", Source: media.SourceCamera, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("webm"), 100000)
	for i := 0; i < len(body); i += 4096 {
		if _, err := w.Write(body[i:min(i+4096, len(body))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fs, err := s.Meetings().Files(ctx, meeting.Access{User: alice}, m.ID)
	if err != nil || len(fs) != 1 {
		t.Fatalf("files: %+v, %v", fs, err)
	}
	f := fs[0]
	select {
	case ev := <-added:
		if file, _ := ev["file"].(map[string]any); file["id"] != f.ID || file["name"] != f.Name {
			t.Errorf("file.added: %v, want %+v", ev, f)
		}
	case <-time.After(5 * time.Second):
		t.Error("no file.added event for the recording within 5 s")
	}
	if f.ContentType != "video/webm" || f.Size != int64(len(body)) || !strings.HasPrefix(f.Name, "Recording ") ||
		!strings.HasSuffix(f.Name, " Alice _ Liddell.webm") || f.UploaderName != "Recording" {
		t.Errorf("file: %+v", f)
	}
	_, rc, err := s.Meetings().OpenFile(ctx, meeting.Access{User: alice}, m.ID, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Errorf("read back %d bytes, want %d", len(got), len(body))
	}

	// A meeting that does not allow recording gets no file.
	m2, _ := s.Meetings().Create(ctx, alice, meeting.Change{Title: mptr("Private")})
	if _, err := sink.Create(ctx, media.RecordingInfo{Room: m2.ID, Participant: "p1", Source: media.SourceCamera, Started: time.Now()}); err == nil {
		t.Error("a recording file was created for a meeting that does not allow recording")
	}
}

// TestTwoServersShareNoMediaPort: the second Server of a process takes
// another UDP port when the default one is taken.
func TestTwoServersShareNoMediaPort(t *testing.T) {
	d := memdir.New()
	var addrs []string
	for range 2 {
		s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d,
			AllowUnencrypted: true, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown(context.Background())
		addrs = append(addrs, s.Media().UDPAddr().String())
	}
	if addrs[0] == addrs[1] {
		t.Errorf("both SFUs on %s", addrs[0])
	}
	// An explicit address that is taken is an error.
	_, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d,
		AllowUnencrypted: true, DataDir: t.TempDir(), MediaUDPAddr: addrs[1]})
	if err == nil || !strings.Contains(err.Error(), "parley: media") {
		t.Errorf("New on a taken MediaUDPAddr = %v", err)
	}
	s, err := parley.New(parley.Config{Domains: []string{"example.com"}, Directory: d, Authenticator: d,
		AllowUnencrypted: true, DataDir: t.TempDir(), DisableMedia: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if s.Media() != nil {
		t.Error("DisableMedia left an SFU")
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/meetings/static/media-config.js", nil))
	if !strings.Contains(rec.Body.String(), "window.parleyMediaConfig = null") {
		t.Errorf("media-config.js without media: %d %s", rec.Code, rec.Body)
	}
}

func mustRoom(t *testing.T, s *parley.Server, id string) meeting.Room {
	t.Helper()
	r, err := s.Meetings().Room(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitMedia(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mptr[T any](v T) *T { return &v }
