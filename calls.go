package parley

import (
	"context"

	"github.com/parleyhq/parley/jid"
)

// Calls from the chat panel. A 1:1 audio or video call is a meeting of
// the caller's, started from the chat like a meeting (POST
// meetings/api/start with "call": "audio" or "video", under the webmail
// session, see meeting.Service.StartFromChat): a small room of the same
// SFU with an unguessable link that anyone holding it may join. The panel
// posts the link into the chat as a plain body that every XMPP client
// shows, with a XEP-0482 call invite (urn:xmpp:call-invites:0) whose
// external URI is the link, and opens the room for the caller; the
// callee's panel shows a card that opens it. An audio call's link asks
// the room to join without camera (?media=audio).

// displayName is a user's name in the host directory, for the titles and
// messages of meetings and calls started from a chat; "" when the
// directory has none (the address is shown then).
func (s *Server) displayName(ctx context.Context, user jid.JID) string {
	e, err := s.dir.Lookup(ctx, user.Address())
	if err != nil {
		return ""
	}
	return e.Name
}
