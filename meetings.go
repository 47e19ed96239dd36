package parley

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/parleyhq/parley/files"
	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/meeting"
	"github.com/parleyhq/parley/storage"
)

// newMeetings builds the meeting service: its links under base, its files
// beside chat's, the host's webmail session as the organizer's identity,
// and a secret kept in the store so guests keep their identity across
// restarts.
func (s *Server) newMeetings(base, filesDir string) error {
	secret, err := s.serverSecret("meeting-secret")
	if err != nil {
		return err
	}
	mf, err := meeting.NewDirFiles(filepath.Join(filesDir, "meetings"))
	if err != nil {
		return fmt.Errorf("parley: meeting files: %w", err)
	}
	blacklist := s.cfg.Blacklist
	if blacklist == nil {
		blacklist = files.DefaultBlacklist()
	}
	svc, err := meeting.New(meeting.Config{
		Store: s.store,
		Files: mf,
		CheckFileName: func(name string) error {
			if files.Blocked(name, blacklist) {
				return errors.New("files of this type may not be shared")
			}
			return nil
		},
		MaxFileSize:   s.files.MaxFileSize(),
		LinkBase:      base + "/meetings/j/",
		Identify:      s.identify,
		DisplayName:   s.displayName,
		Secret:        secret,
		SecureCookies: true,
		Appointments:  s.cfg.Appointments,
		SweepAt:       s.cfg.MeetingSweepAt,
		Logger:        s.log.With("component", "meetings"),
	})
	if err != nil {
		return fmt.Errorf("parley: %w", err)
	}
	s.meet = svc
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBG = cancel
	go svc.RunSweeper(ctx)
	return nil
}

// identify is the webmail session, for pages that are not XMPP.
func (s *Server) identify(r *http.Request) (jid.JID, bool) {
	ra, ok := s.cfg.Authenticator.(RequestAuthenticator)
	if !ok {
		return jid.JID{}, false
	}
	addr, err := ra.AuthenticateRequest(r)
	if err != nil {
		return jid.JID{}, false
	}
	j, err := jid.Parse(addr)
	if err != nil || j.Local() == "" || !s.local(j.Domain()) {
		return jid.JID{}, false
	}
	return j.Bare(), true
}

func (s *Server) local(domain string) bool { return s.xmpp.Local(domain) }

// serverSecret returns a random secret kept in the store under name,
// making it on first use.
func (s *Server) serverSecret(name string) ([]byte, error) {
	ctx := context.Background()
	const owner = "parley.server"
	b, err := s.store.UserData(ctx, owner, name)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("parley: reading %s: %w", name, err)
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := s.store.PutUserData(ctx, owner, name, b); err != nil {
		return nil, fmt.Errorf("parley: storing %s: %w", name, err)
	}
	return b, nil
}
