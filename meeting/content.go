package meeting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parleyhq/parley/storage"
)

// Chat posts a message to the meeting chat as the participant of
// credential, who must be in the meeting. The message is stored before
// everyone in the meeting gets it.
func (s *Service) Chat(ctx context.Context, credential, body string) (Message, error) {
	body = strings.TrimSpace(body)
	if body == "" {
		return Message{}, fmt.Errorf("%w: the message is empty", ErrBadRequest)
	}
	if utf8.RuneCountInString(body) > s.cfg.MaxChatLength {
		return Message{}, fmt.Errorf("%w: the message is longer than %d characters", ErrBadRequest, s.cfg.MaxChatLength)
	}
	r, p, err := s.participant(credential)
	if err != nil {
		return Message{}, err
	}
	if p.State != In {
		r.unlock()
		return Message{}, ErrNotAdmitted
	}
	msg := storage.MeetingMessage{Stamp: s.now(), From: p.Identity, Name: p.Name, Body: body}
	r.unlock()

	r.chatMu.Lock()
	defer r.chatMu.Unlock()
	seq, err := s.store.AppendMeetingMessage(ctx, r.id, msg)
	if err != nil {
		return Message{}, s.storeErr(err)
	}
	msg.Seq = seq
	m := Message(msg)
	r.lock()
	r.emitLocked(Event{Type: EventChat, Message: m})
	r.unlock()
	return m, nil
}

// reader is who reads a meeting's chat and files outside the live room.
type reader struct {
	role     Role
	identity string
	r        *room // set when reading as a live participant
}

// access checks that a may read meeting id: a participant in it (by
// credential), its organizer, or a user who took part in it or was
// invited (their participated meetings).
func (s *Service) access(ctx context.Context, a Access, id string) (storage.Meeting, reader, error) {
	st, err := s.load(ctx, id)
	if err != nil {
		return st, reader{}, err
	}
	if a.Credential != "" {
		r, p, err := s.participant(a.Credential)
		if err == nil {
			rd := reader{role: p.Role, identity: p.Identity, r: r}
			in := p.State == In && r.id == id
			r.unlock()
			if in {
				return st, rd, nil
			}
		}
	}
	if !a.User.IsZero() {
		addr := a.User.Address()
		if addr == st.Organizer {
			return st, reader{role: RoleOrganizer, identity: "u:" + addr}, nil
		}
		if _, err := s.store.Participation(ctx, addr, id); err == nil {
			return st, reader{role: RoleAttendee, identity: "u:" + addr}, nil
		}
	}
	return st, reader{}, fmt.Errorf("%w: you are not a participant of this meeting", ErrNotAllowed)
}

// History returns up to max chat messages (0 means 100) after afterSeq.
func (s *Service) History(ctx context.Context, a Access, meetingID string, afterSeq uint64, max int) ([]Message, error) {
	if _, _, err := s.access(ctx, a, meetingID); err != nil {
		return nil, err
	}
	if max <= 0 || max > 500 {
		max = 100
	}
	msgs, err := s.store.MeetingMessages(ctx, meetingID, afterSeq, max)
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message(m)
	}
	return out, nil
}

// ClearChat deletes all of a meeting's chat messages: the organizer (by
// user) or a moderator in the meeting (by credential) may.
func (s *Service) ClearChat(ctx context.Context, a Access, meetingID string) error {
	st, rd, err := s.access(ctx, a, meetingID)
	if err != nil {
		return err
	}
	if rd.role < RoleModerator {
		return fmt.Errorf("%w: only moderators delete the chat", ErrNotAllowed)
	}
	if st.Archived {
		return ErrArchived
	}
	if err := s.store.DeleteMeetingMessages(ctx, meetingID); err != nil {
		return s.storeErr(err)
	}
	s.broadcast(meetingID, Event{Type: EventChatCleared})
	return nil
}

func (s *Service) broadcast(meetingID string, ev Event) {
	s.mu.Lock()
	r := s.rooms[meetingID]
	s.mu.Unlock()
	if r != nil {
		r.lock()
		r.emitLocked(ev)
		r.unlock()
	}
}

func fileOf(f storage.MeetingFile) File {
	return File{ID: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size,
		Uploader: f.Uploader, UploaderName: f.UploaderName, Stamp: f.Stamp, ref: f.Ref}
}

// cleanName keeps the last element of a file name, without control
// characters, at most 255 bytes.
func cleanName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(strings.TrimSpace(name))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	if name == "." || name == "/" || name == ".." {
		return ""
	}
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// mayUpload applies the meeting's upload permission.
func mayUpload(u Uploads, p *participant) bool {
	switch u {
	case UploadsAnyone:
		return true
	case UploadsAuthenticated:
		return !p.User.IsZero()
	}
	return p.Role == RoleOrganizer
}

// Upload shares a file in the meeting as the participant of credential.
// The meeting's upload permission and the host's file name policy apply
// as they are when the upload starts. The bytes stream from body to the
// FileStore; at most Config.MaxFileSize are accepted.
func (s *Service) Upload(ctx context.Context, credential, name, contentType string, body io.Reader) (File, error) {
	if s.cfg.Files == nil {
		return File{}, ErrFilesDisabled
	}
	name = cleanName(name)
	if name == "" {
		return File{}, fmt.Errorf("%w: the file needs a name", ErrBadRequest)
	}
	r, p, err := s.participant(credential)
	if err != nil {
		return File{}, err
	}
	if p.State != In {
		r.unlock()
		return File{}, ErrNotAdmitted
	}
	if !mayUpload(Uploads(r.st.Uploads), p) {
		who := map[Uploads]string{UploadsOrganizer: "only the organizer", UploadsAuthenticated: "only logged-in users"}[Uploads(r.st.Uploads)]
		r.unlock()
		return File{}, fmt.Errorf("%w: %s may share files in this meeting", ErrNotAllowed, who)
	}
	f := storage.MeetingFile{ID: newToken(12), Name: name, ContentType: contentType,
		Uploader: p.Identity, UploaderName: p.Name, Stamp: s.now()}
	r.unlock()
	if check := s.cfg.CheckFileName; check != nil {
		if err := check(name); err != nil {
			return File{}, fmt.Errorf("%w: %v", ErrFileBlocked, err)
		}
	}
	if len(f.ContentType) > 255 || f.ContentType == "" {
		f.ContentType = "application/octet-stream"
	}
	ref, size, err := s.cfg.Files.Put(ctx, name, body, s.cfg.MaxFileSize)
	if errors.Is(err, ErrFileTooLarge) {
		return File{}, fmt.Errorf("%w: the limit is %d bytes", ErrFileTooLarge, s.cfg.MaxFileSize)
	}
	if err != nil {
		return File{}, fmt.Errorf("meeting: storing the file: %w", err)
	}
	f.Ref, f.Size = ref, size
	if err := s.store.PutMeetingFile(ctx, r.id, f); err != nil {
		s.cfg.Files.Delete(context.WithoutCancel(ctx), ref)
		return File{}, s.storeErr(err)
	}
	out := fileOf(f)
	r.lock()
	r.emitLocked(Event{Type: EventFileAdded, File: out})
	r.unlock()
	return out, nil
}

// NewFile describes a file that the host, or Parley itself, adds to a
// meeting with AddFile (a recording, for example).
type NewFile struct {
	// Name is the file name the Files tab shows (cleaned as an upload's).
	Name string
	// ContentType defaults to application/octet-stream.
	ContentType string
	// Uploader is the file's owner identity (who may delete it besides
	// moderators); UploaderName is the sender the Files tab shows.
	Uploader, UploaderName string
	// Stamp is when the file was made; zero means now.
	Stamp time.Time
	// MaxSize bounds the bytes read; 0 means Config.MaxFileSize.
	MaxSize int64
}

// AddFile stores body as a file of meeting meetingID on the host's own
// authority: no participant's upload permission applies, the host's file
// name policy (Config.CheckFileName) does. The file is listed and
// downloadable like an upload, and everyone in the meeting gets a
// file.added event. An archived meeting accepts no new file.
func (s *Service) AddFile(ctx context.Context, meetingID string, nf NewFile, body io.Reader) (File, error) {
	if s.cfg.Files == nil {
		return File{}, ErrFilesDisabled
	}
	name := cleanName(nf.Name)
	if name == "" {
		return File{}, fmt.Errorf("%w: the file needs a name", ErrBadRequest)
	}
	st, err := s.load(ctx, meetingID)
	if err != nil {
		return File{}, err
	}
	if st.Archived {
		return File{}, ErrArchived
	}
	if check := s.cfg.CheckFileName; check != nil {
		if err := check(name); err != nil {
			return File{}, fmt.Errorf("%w: %v", ErrFileBlocked, err)
		}
	}
	f := storage.MeetingFile{ID: newToken(12), Name: name, ContentType: nf.ContentType,
		Uploader: nf.Uploader, UploaderName: nf.UploaderName, Stamp: nf.Stamp}
	if f.Stamp.IsZero() {
		f.Stamp = s.now()
	}
	if len(f.ContentType) > 255 || f.ContentType == "" {
		f.ContentType = "application/octet-stream"
	}
	limit := nf.MaxSize
	if limit <= 0 {
		limit = s.cfg.MaxFileSize
	}
	ref, size, err := s.cfg.Files.Put(ctx, name, body, limit)
	if errors.Is(err, ErrFileTooLarge) {
		return File{}, fmt.Errorf("%w: the limit is %d bytes", ErrFileTooLarge, limit)
	}
	if err != nil {
		return File{}, fmt.Errorf("meeting: storing the file: %w", err)
	}
	f.Ref, f.Size = ref, size
	if err := s.store.PutMeetingFile(ctx, meetingID, f); err != nil {
		s.cfg.Files.Delete(context.WithoutCancel(ctx), ref)
		return File{}, s.storeErr(err)
	}
	out := fileOf(f)
	s.broadcast(meetingID, Event{Type: EventFileAdded, File: out})
	return out, nil
}

// Files lists the files shared in a meeting, oldest first.
func (s *Service) Files(ctx context.Context, a Access, meetingID string) ([]File, error) {
	if _, _, err := s.access(ctx, a, meetingID); err != nil {
		return nil, err
	}
	fs, err := s.store.MeetingFiles(ctx, meetingID)
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make([]File, len(fs))
	for i, f := range fs {
		out[i] = fileOf(f)
	}
	return out, nil
}

// Usage is the file storage card of a meeting: the number of files and
// their bytes.
func (s *Service) Usage(ctx context.Context, a Access, meetingID string) (Usage, error) {
	fs, err := s.Files(ctx, a, meetingID)
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Files: len(fs)}
	for _, f := range fs {
		u.Bytes += f.Size
	}
	return u, nil
}

// OpenFile returns a shared file and its bytes; the caller closes them.
func (s *Service) OpenFile(ctx context.Context, a Access, meetingID, fileID string) (File, io.ReadCloser, error) {
	if s.cfg.Files == nil {
		return File{}, nil, ErrFilesDisabled
	}
	fs, err := s.Files(ctx, a, meetingID)
	if err != nil {
		return File{}, nil, err
	}
	for _, f := range fs {
		if f.ID == fileID {
			rc, err := s.cfg.Files.Open(ctx, f.ref)
			if err != nil {
				return File{}, nil, s.storeErr(err)
			}
			return f, rc, nil
		}
	}
	return File{}, nil, fmt.Errorf("%w: no such file", ErrNotFound)
}

// DeleteFile deletes a shared file: its uploader, a moderator in the
// meeting or the organizer may.
func (s *Service) DeleteFile(ctx context.Context, a Access, meetingID, fileID string) error {
	st, rd, err := s.access(ctx, a, meetingID)
	if err != nil {
		return err
	}
	if st.Archived {
		return ErrArchived
	}
	fs, err := s.store.MeetingFiles(ctx, meetingID)
	if err != nil {
		return s.storeErr(err)
	}
	for _, f := range fs {
		if f.ID != fileID {
			continue
		}
		if rd.role < RoleModerator && f.Uploader != rd.identity {
			return fmt.Errorf("%w: only its uploader or a moderator deletes a file", ErrNotAllowed)
		}
		if err := s.store.DeleteMeetingFile(ctx, meetingID, fileID); err != nil {
			return s.storeErr(err)
		}
		if s.cfg.Files != nil {
			if err := s.cfg.Files.Delete(ctx, f.Ref); err != nil {
				s.log.Warn("deleting a meeting file", "meeting", meetingID, "ref", f.Ref, "err", err)
			}
		}
		s.broadcast(meetingID, Event{Type: EventFileDeleted, File: fileOf(f)})
		return nil
	}
	return fmt.Errorf("%w: no such file", ErrNotFound)
}
