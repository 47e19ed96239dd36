// Package meeting runs online meetings: rooms with a title, a link
// anyone can be given, an optional password, guests, a lobby,
// moderators, a schedule with recurrence and an end behaviour, an
// in-meeting chat and shared files kept after the meeting, and the
// calendar's meetings with their nightly clean-up. Moving audio and video
// is package media's job: it asks Service.Authorize who a peer is and
// follows a Room for who is in and who is muted or removed.
//
// # Roles
//
// The organizer owns a meeting and alone changes its settings, at any
// time, with immediate effect for everyone in it. Moderators (granted by
// the organizer or another moderator, and kept with the meeting) admit or
// deny lobby waiters, mute and remove participants, grant moderator
// rights and delete the chat. Attendees are logged-in users; guests
// joined by link with a name, when the meeting allows guests. The
// Service enforces every rule; pages only reflect them.
//
// # Quick start
//
//	svc, err := meeting.New(meeting.Config{
//		Store:    store,                          // a storage.Meetings, e.g. boltstore
//		Files:    files,                          // a FileStore; nil turns sharing off
//		Identify: webmailSession,                 // func(*http.Request) (jid.JID, bool)
//		LinkBase: "https://mail.example.com/parley/meetings/j/",
//	})
//	if err != nil {
//		return err
//	}
//	defer svc.Close()
//	go svc.RunSweeper(ctx)
//	mux.Handle("/parley/", http.StripPrefix("/parley", svc.Handler()))
//
//	m, err := svc.Create(ctx, alice, meeting.Change{Title: ptr("Weekly sync")})
//	// m.Link is what to share.
//
// A participant joins by link (Join, or POST /meetings/api/join/{token}),
// gets a credential, and opens the participant WebSocket
// (/meetings/api/ws) with it: everything that happens in the room arrives
// there as events, and chat and moderation go back the same way.
package meeting
