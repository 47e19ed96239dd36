package meeting

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parleyhq/parley/jid"
)

// names is a host directory for DisplayName.
func names(c *Config) {
	c.DisplayName = func(_ context.Context, u jid.JID) string {
		return map[string]string{"alice@example.com": "Alice Liddell", "bob@example.com": "Bob Builder"}[u.Address()]
	}
}

func TestStartFromChatCalls(t *testing.T) {
	e := newEnv(t, names)
	for _, tc := range []struct {
		call       CallMedia
		title, msg string
		linkSuffix string
	}{
		{AudioCall, "Audio call: Alice Liddell and Bob Builder", "Alice Liddell started an audio call.\nJoin: ", "?media=audio"},
		{VideoCall, "Video call: Alice Liddell and Bob Builder", "Alice Liddell started a video call.\nJoin: ", ""},
		{"", "Meeting with Bob Builder", "Alice Liddell started a video meeting: Meeting with Bob Builder\nJoin: ", ""},
	} {
		st, err := e.svc.StartFromChat(ctx, alice, bob, ChatStart{Call: tc.call})
		if err != nil {
			t.Fatal(err)
		}
		m := st.Meeting
		if m.Title != tc.title || m.Organizer != alice || !m.AllowGuests || m.Lobby || m.HasPassword || st.Call != tc.call {
			t.Errorf("%q: meeting %+v", tc.call, m)
		}
		if st.Link != m.Link+tc.linkSuffix || st.Message != tc.msg+st.Link {
			t.Errorf("%q: link %q, message %q", tc.call, st.Link, st.Message)
		}
		// Anyone with the link joins, logged in or not; users show by
		// their directory names.
		e.join(m, JoinRequest{Name: "A guest"})
		if tk := e.join(m, JoinRequest{User: bob}); tk.Participant.Name != "Bob Builder" {
			t.Errorf("bob joins as %q", tk.Participant.Name)
		}
	}
	// Someone with no directory name is shown by address.
	carol := jid.MustParse("carol@example.com")
	st, err := e.svc.StartFromChat(ctx, alice, carol, ChatStart{Call: VideoCall, Room: " "})
	if err != nil || st.Meeting.Title != "Video call: Alice Liddell and carol@example.com" {
		t.Errorf("title %q, %v", st.Meeting.Title, err)
	}
	if _, err := e.svc.StartFromChat(ctx, alice, bob, ChatStart{Call: "fax"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("call fax: %v", err)
	}
	if _, err := e.svc.StartFromChat(ctx, alice, jid.JID{}, ChatStart{Call: AudioCall}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("no contact: %v", err)
	}
}

func TestStartCallAPI(t *testing.T) {
	e := newEnv(t, names)
	if r := e.do("POST", "/meetings/api/start", "", map[string]any{"contact": "bob@example.com", "call": "video"}); r.status != 401 {
		t.Errorf("without a webmail session: %d %s", r.status, r.raw)
	}
	if r := e.do("POST", "/meetings/api/start", "alice@example.com", map[string]any{"contact": "bob@example.com", "call": "fax"}); r.status != 400 {
		t.Errorf("call fax: %d %s", r.status, r.raw)
	}
	r := e.do("POST", "/meetings/api/start", "alice@example.com", map[string]any{"contact": "bob@example.com", "call": "audio"})
	link, _ := r.body["link"].(string)
	if r.status != 201 || r.body["call"] != "audio" || !strings.HasSuffix(link, "?media=audio") || r.body["message"] != "Alice Liddell started an audio call.\nJoin: "+link {
		t.Fatalf("audio call: %d %s", r.status, r.raw)
	}
	// The call is alice's meeting, and in bob's participated meetings.
	id := r.body["meeting"].(map[string]any)["id"].(string)
	if g := e.do("GET", "/meetings/api/meetings/"+id, "alice@example.com", nil); g.body["isOrganizer"] != true {
		t.Errorf("alice's call: %s", g.raw)
	}
	if p := e.do("GET", "/meetings/api/participated", "bob@example.com", nil); len(p.body["meetings"].([]any)) != 1 {
		t.Errorf("bob's participated: %s", p.raw)
	}
}
