package meeting

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// The participant WebSocket speaks JSON text messages.
//
// The client's first message authenticates it:
//
//	{"type":"hello","credential":"..."}
//
// (the credential stays out of the URL, and so out of logs). The server
// then sends events, one object each: {"type":"welcome",...} first, then
// those listed with EventType, shaped by eventJSON. The client sends
// commands, each with an optional "ref" echoed in the answer
// ({"type":"ok","ref"} or {"type":"error","ref","error":{code,message}}):
//
//	{"type":"chat","body":"hello"}
//	{"type":"admit"|"deny"|"mute"|"remove","participant":"<id>"}
//	{"type":"moderator","participant":"<id>","on":true}
//	{"type":"unmute"}
//	{"type":"leave"}
//	{"type":"ping"}
//
// A connection whose events back up past Config.QueueLength is closed
// with status 1008; the page reconnects with the same credential.

const (
	helloTimeout = 10 * time.Second
	writeTimeout = 10 * time.Second
	readLimit    = 64 << 10
)

type eventJSON struct {
	Type         EventType         `json:"type"`
	Participant  *participantJSON  `json:"participant,omitempty"`
	Participants []participantJSON `json:"participants,omitempty"`
	Lobby        []participantJSON `json:"lobby,omitempty"`
	Meeting      *meetingJSON      `json:"meeting,omitempty"`
	Message      *Message          `json:"message,omitempty"`
	File         *File             `json:"file,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	By           string            `json:"by,omitempty"`
}

func (s *Service) eventOut(ev Event, viewer *participant) eventJSON {
	j := eventJSON{Type: ev.Type, Reason: ev.Reason, By: ev.By}
	switch ev.Type {
	case EventWelcome:
		p := participantOut(ev.Participant)
		m := s.meetingOut(ev.Meeting, viewer.User)
		j.Participant, j.Meeting = &p, &m
		j.Participants = participantsOut(ev.Participants)
		if ev.Participant.Role >= RoleModerator {
			j.Lobby = participantsOut(ev.Lobby)
		}
	case EventState, EventJoined, EventLeft, EventUpdated, EventMuted, EventRemoved:
		p := participantOut(ev.Participant)
		j.Participant = &p
	case EventLobby:
		j.Lobby = participantsOut(ev.Lobby)
	case EventSettings:
		m := s.meetingOut(ev.Meeting, viewer.User)
		j.Meeting = &m
	case EventChat:
		j.Message = &ev.Message
	case EventFileAdded, EventFileDeleted:
		j.File = &ev.File
	}
	return j
}

type command struct {
	Type        string `json:"type"`
	Ref         string `json:"ref,omitempty"`
	Credential  string `json:"credential,omitempty"`
	Body        string `json:"body,omitempty"`
	Participant string `json:"participant,omitempty"`
	On          bool   `json:"on,omitempty"`
}

type reply struct {
	Type  string    `json:"type"`
	Ref   string    `json:"ref,omitempty"`
	Error *apiError `json:"error,omitempty"`
}

func (s *Service) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		return // Accept has answered
	}
	defer ws.CloseNow()
	ws.SetReadLimit(readLimit)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	hctx, hcancel := context.WithTimeout(ctx, helloTimeout)
	var hello command
	err = wsjson.Read(hctx, ws, &hello)
	hcancel()
	if err != nil || hello.Type != "hello" {
		ws.Close(websocket.StatusPolicyViolation, "expected hello")
		return
	}
	c, err := s.connect(hello.Credential)
	if err != nil {
		b := errorBody(err)
		wctx, wcancel := context.WithTimeout(ctx, writeTimeout)
		wsjson.Write(wctx, ws, reply{Type: "error", Error: &b})
		wcancel()
		ws.Close(websocket.StatusPolicyViolation, b.Code)
		return
	}
	defer s.disconnect(c)

	// One writer: events from the room and replies to commands.
	replies := make(chan reply, 16)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer cancel()
		s.writeLoop(ctx, ws, c, replies)
	}()

	for {
		var cmd command
		if err := wsjson.Read(ctx, ws, &cmd); err != nil {
			break
		}
		rep := reply{Type: "ok", Ref: cmd.Ref}
		if err := s.command(ctx, hello.Credential, cmd); err != nil {
			b := errorBody(err)
			rep = reply{Type: "error", Ref: cmd.Ref, Error: &b}
		}
		select {
		case replies <- rep:
		case <-ctx.Done():
		default:
			// A client that sends faster than it reads is dropped, like
			// a slow reader.
			ws.Close(websocket.StatusPolicyViolation, "too many commands in flight")
			cancel()
		}
		if cmd.Type == "leave" {
			break
		}
	}
	cancel()
	<-writerDone
}

func (s *Service) writeLoop(ctx context.Context, ws *websocket.Conn, c *conn, replies <-chan reply) {
	write := func(v any) error {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		return wsjson.Write(wctx, ws, v)
	}
	for {
		select {
		case ev := <-c.ch:
			if write(s.eventOut(ev, c.p)) != nil {
				return
			}
		case rep := <-replies:
			if write(rep) != nil {
				return
			}
		case <-c.done:
			// Drain what the room queued before it let go (the reason
			// for a removal, the end of the meeting), then close.
		drain:
			for {
				select {
				case ev := <-c.ch:
					if write(s.eventOut(ev, c.p)) != nil {
						return
					}
				default:
					break drain
				}
			}
			code := websocket.StatusNormalClosure
			if c.reason == "too slow: events were not read in time" {
				code = websocket.StatusPolicyViolation
			}
			reason := c.reason
			if len(reason) > 120 {
				reason = reason[:120]
			}
			ws.Close(code, reason)
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) command(ctx context.Context, cred string, cmd command) error {
	switch cmd.Type {
	case "ping":
		r, _, err := s.participant(cred)
		if err == nil {
			r.unlock()
		}
		return err
	case "chat":
		_, err := s.Chat(ctx, cred, cmd.Body)
		return err
	case "admit":
		return s.Admit(ctx, cred, cmd.Participant)
	case "deny":
		return s.Deny(ctx, cred, cmd.Participant)
	case "mute":
		return s.Mute(ctx, cred, cmd.Participant)
	case "unmute":
		return s.Unmute(ctx, cred)
	case "remove":
		return s.Remove(ctx, cred, cmd.Participant)
	case "moderator":
		return s.SetModerator(ctx, cred, cmd.Participant, cmd.On)
	case "leave":
		return s.Leave(ctx, cred)
	}
	return fmt.Errorf("%w: unknown command %q", ErrBadRequest, cmd.Type)
}
