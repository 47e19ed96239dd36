package parley

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/meeting"
)

// DefaultMediaUDPAddr is where the SFU listens for every participant's
// audio and video when Config.MediaUDPAddr is empty: one UDP port to open
// in the firewall.
const DefaultMediaUDPAddr = ":7882"

// Recordings are meeting files like uploads, but one can run for hours:
// the upload limit does not apply to them.
const maxRecordingSize = 1 << 40

// newMedia builds the SFU that carries meetings' audio and video and ties
// it to the meeting service: meeting credentials join it, meeting
// moderation is enforced in it, and its recordings become meeting files.
func (s *Server) newMedia(filesDir string) error {
	if s.cfg.DisableMedia {
		return nil
	}
	b := &mediaBridge{
		meet:  s.meet,
		log:   s.log.With("component", "media"),
		rooms: map[string]*followedRoom{},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	cfg := media.Config{
		Authorizer: media.AuthorizerFunc(b.authorize),
		OnEvent:    b.onEvent,
		Recording:  recordingSink{b},
		UDPAddr:    s.cfg.MediaUDPAddr,
		TCPAddr:    s.cfg.MediaTCPAddr,
		PublicIPs:  s.cfg.MediaPublicIPs,
		ICEServers: s.cfg.MediaICEServers,
		Logger:     b.log,
	}
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = DefaultMediaUDPAddr
	}
	sfu, err := media.New(cfg)
	if err != nil && s.cfg.MediaUDPAddr == "" && errors.Is(err, syscall.EADDRINUSE) {
		// The default port is taken, most likely by another Server in
		// this process: take a free one rather than fail, and say so,
		// since the firewall opens only the default.
		for range 5 {
			var port int
			if port, err = freeUDPPort(); err != nil {
				break
			}
			cfg.UDPAddr = ":" + strconv.Itoa(port)
			if sfu, err = media.New(cfg); !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
		}
		if err == nil {
			b.log.Warn("media: the default UDP port is in use; audio and video use another one, which the firewall may not open (set Config.MediaUDPAddr)",
				"default", DefaultMediaUDPAddr, "addr", cfg.UDPAddr)
		}
	}
	if err != nil {
		b.cancel()
		return fmt.Errorf("parley: media: %w", err)
	}
	b.sfu = sfu
	s.media, s.bridge = sfu, b
	return nil
}

// mountMedia serves the signalling WebSocket at /media/ws, and tells the
// meeting pages where it is: their media-config.js, which says "no media"
// where package meeting serves its pages alone, says it here.
func (s *Server) mountMedia() {
	if s.media == nil {
		return
	}
	s.mux.Handle("/media/ws", s.media.Handler())
	s.mux.HandleFunc("/meetings/static/media-config.js", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// Relative to the meetings area, wherever the host mounts Handler.
		io.WriteString(w, "'use strict';\nwindow.parleyMediaConfig = {\"signalling\": \"../media/ws\"};\n")
	})
}

// freeUDPPort asks the system for a UDP port no one uses now.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// Media returns the SFU that carries meetings' audio and video, or nil
// with Config.DisableMedia. The host may use it for moderation of its own
// (Mute, Remove, SetRecording with a meeting ID as the room) and to learn
// the UDP port it listens on (UDPAddr).
func (s *Server) Media() *media.SFU { return s.media }

// closeMedia disconnects every participant and finishes the recordings
// (they are stored as meeting files, so before the store closes).
func (s *Server) closeMedia() {
	if s.media == nil {
		return
	}
	s.media.Close()
	s.bridge.close()
}

// mediaBridge ties the SFU to the meeting service. A media room is a
// meeting (room ID = meeting ID) and a media participant a meeting
// participant (participant ID = meeting participant ID).
//
// While someone is in a media room, the bridge follows the meeting room's
// events and applies them in the SFU: a moderator's mute blocks the
// participant's mic until they unmute themselves, a removal or a leave
// disconnects them, the end of the meeting disconnects everyone, and
// recording stops when the organizer disallows it.
type mediaBridge struct {
	meet *meeting.Service
	sfu  *media.SFU
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	rooms map[string]*followedRoom
}

// followedRoom is a meeting room the bridge follows, with who is in its
// media room (kept from the SFU's events, which arrive in order).
type followedRoom struct {
	in     map[string]bool
	cancel func()
}

// authorize turns a meeting credential into a grant: the participant's
// meeting and ID, moderator rights for moderators and the organizer, and
// recording if the meeting allows it.
func (b *mediaBridge) authorize(ctx context.Context, credential string) (media.Grant, error) {
	p, err := b.meet.Authorize(ctx, credential)
	if err != nil {
		return media.Grant{}, err
	}
	r, err := b.meet.Room(ctx, p.MeetingID)
	if err != nil {
		return media.Grant{}, err
	}
	g := media.Grant{
		Room:        p.MeetingID,
		Participant: p.ID,
		Name:        p.Name,
		Limits:      media.Limits{Recording: r.Meeting().Recording},
	}
	if p.Role >= meeting.RoleModerator {
		g.Role = media.Moderator
	}
	return g, nil
}

// onEvent receives the SFU's events, one at a time and in order.
func (b *mediaBridge) onEvent(e media.Event) {
	switch e.Type {
	case media.EventJoined:
		b.joined(e.Room, e.Participant)
	case media.EventLeft:
		b.mu.Lock()
		f := b.rooms[e.Room]
		if f != nil {
			delete(f.in, e.Participant)
			if len(f.in) == 0 {
				delete(b.rooms, e.Room)
				f.cancel()
			}
		}
		b.mu.Unlock()
	case media.EventRecording:
		if e.Recording {
			// The SFU allows recording by the limits of the last join;
			// the meeting's setting may have changed since.
			if r, err := b.meet.Room(b.ctx, e.Room); err == nil && !r.Meeting().Recording {
				b.sfu.SetRecording(e.Room, false)
			}
		}
	}
}

// joined follows the meeting of a media room from its first participant
// on, and applies the meeting's mute to whoever joins muted.
func (b *mediaBridge) joined(roomID, participantID string) {
	r, err := b.meet.Room(b.ctx, roomID)
	if err != nil {
		b.log.Warn("media: a media room without its meeting", "room", roomID, "err", err)
		b.sfu.Remove(roomID, participantID, "ended")
		return
	}
	b.mu.Lock()
	f := b.rooms[roomID]
	if f == nil {
		f = &followedRoom{in: map[string]bool{}}
		b.rooms[roomID] = f
		b.follow(r, f)
	}
	f.in[participantID] = true
	b.mu.Unlock()
	b.applyMutes(r, participantID)
}

// follow starts the goroutine that applies r's events in the SFU until
// f.cancel; callers hold b.mu.
func (b *mediaBridge) follow(r meeting.Room, f *followedRoom) {
	ctx, cancel := context.WithCancel(b.ctx)
	f.cancel = cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for ctx.Err() == nil {
			since := time.Now()
			events, stop := r.Subscribe(64)
			// Whatever happened before this subscription is in the
			// room's state: catch up with it.
			b.applyMutes(r, "")
			ended := b.apply(ctx, r.ID(), events)
			stop()
			if ended {
				return
			}
			// Dropped for falling behind: subscribe again, unless the
			// meeting is gone.
			if _, err := b.meet.Room(ctx, r.ID()); err != nil {
				b.removeAll(r.ID(), "ended")
				return
			}
			if time.Since(since) < time.Second {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
}

// apply runs the meeting's events in the SFU until the subscription
// closes (false) or the meeting ends (true).
func (b *mediaBridge) apply(ctx context.Context, roomID string, events <-chan meeting.Event) (ended bool) {
	for {
		select {
		case <-ctx.Done():
			return true
		case ev, ok := <-events:
			if !ok {
				return false
			}
			p := ev.Participant
			switch ev.Type {
			case meeting.EventMuted:
				b.ignore(b.sfu.Mute(roomID, p.ID, p.Muted))
			case meeting.EventUpdated, meeting.EventJoined:
				// A role granted mid-meeting takes effect in the SFU at
				// once, with no new join.
				role := media.Participant
				if p.Role >= meeting.RoleModerator {
					role = media.Moderator
				}
				b.ignore(b.sfu.SetRole(roomID, p.ID, role))
			case meeting.EventRemoved:
				b.ignore(b.sfu.Remove(roomID, p.ID, "removed"))
			case meeting.EventLeft:
				// A leave with a reason ends the participation (left,
				// removed, guests no longer allowed); one without is a
				// lost connection the page comes back from.
				if ev.Reason != "" {
					b.ignore(b.sfu.Remove(roomID, p.ID, "removed"))
				}
			case meeting.EventSettings:
				if !ev.Meeting.Recording && b.sfu.Recording(roomID) {
					b.ignore(b.sfu.SetRecording(roomID, false))
				}
			case meeting.EventEnded:
				b.removeAll(roomID, "ended")
				return true
			}
		}
	}
}

// applyMutes blocks the mic of media participants the meeting has muted:
// one (participantID), or all when it is empty.
func (b *mediaBridge) applyMutes(r meeting.Room, participantID string) {
	for _, p := range r.Participants() {
		if p.Muted && (participantID == "" || p.ID == participantID) {
			b.ignore(b.sfu.Mute(r.ID(), p.ID, true))
		}
	}
}

func (b *mediaBridge) removeAll(roomID, reason string) {
	ps, _ := b.sfu.Participants(roomID)
	for _, p := range ps {
		b.ignore(b.sfu.Remove(roomID, p.ID, reason))
	}
}

// ignore logs what is not "not (or no longer) in the media room".
func (b *mediaBridge) ignore(err error) {
	if err != nil && !errors.Is(err, media.ErrNotFound) && !errors.Is(err, media.ErrClosed) {
		b.log.Warn("media: applying a meeting event", "err", err)
	}
}

func (b *mediaBridge) close() {
	b.cancel()
	b.wg.Wait()
}

// recordingSink stores each recorded file as a file of its meeting
// (meeting.Service.AddFile), streamed into the meeting file store as it is
// written: once the recording stops it is listed and downloadable with the
// meeting's other files, and everyone in the meeting gets file.added.
type recordingSink struct{ b *mediaBridge }

// Create implements media.RecordingSink.
func (rs recordingSink) Create(ctx context.Context, info media.RecordingInfo) (io.WriteCloser, error) {
	b := rs.b
	r, err := b.meet.Room(ctx, info.Room)
	if err != nil {
		return nil, err
	}
	if !r.Meeting().Recording {
		return nil, errors.New("parley: the meeting does not allow recording")
	}
	name := recordingName(info)
	pr, pw := io.Pipe()
	w := &recordingWriter{pw: pw, done: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(w.done)
		// Not ctx: the file outlives the SFU's shutdown, which finishes it.
		ctx := context.WithoutCancel(ctx)
		f, err := b.meet.AddFile(ctx, info.Room, meeting.NewFile{
			Name: name, ContentType: "video/webm", Uploader: "parley:recording", UploaderName: "Recording",
			Stamp: info.Started, MaxSize: maxRecordingSize,
		}, pr)
		if err != nil {
			pr.CloseWithError(err)
			w.err = fmt.Errorf("parley: storing recording %q: %w", name, err)
			b.log.Error("media: storing a recording", "meeting", info.Room, "name", name, "err", err)
			return
		}
		b.log.Info("media: recording stored", "meeting", info.Room, "name", name, "bytes", f.Size)
	}()
	return w, nil
}

// recordingWriter streams a recording into the file store; Close returns
// once the file is stored and listed.
type recordingWriter struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error
}

func (w *recordingWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

func (w *recordingWriter) Close() error {
	w.pw.Close()
	<-w.done
	return w.err
}

// recordingName is what the Files tab shows: "Recording 2026-01-02
// 15.04.05 Alice.webm", with "screen" for a screen share.
func recordingName(info media.RecordingInfo) string {
	who := strings.Map(func(r rune) rune {
		if r < ' ' || strings.ContainsRune(`/\:*?"<>|`, r) {
			return '_'
		}
		return r
	}, strings.TrimSpace(info.Name))
	if who == "" {
		who = info.Participant
	}
	for len(who) > 64 {
		_, n := utf8.DecodeLastRuneInString(who)
		who = who[:len(who)-n]
	}
	name := "Recording " + info.Started.Local().Format("2006-01-02 15.04.05") + " " + who
	if info.Source == media.SourceScreen {
		name += " screen"
	}
	return name + ".webm"
}
