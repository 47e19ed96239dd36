package meeting_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/meeting"
	"github.com/parleyhq/parley/storage/memstore"
)

// A host's chat starts an audio call: the room is the caller's, named
// with the directory's names, and its link (which asks the room for the
// microphone only) goes into the chat in the message.
func ExampleService_StartFromChat() {
	ctx := context.Background()
	names := map[string]string{"alice@example.com": "Alice Liddell", "bob@example.com": "Bob Builder"}
	svc, err := meeting.New(meeting.Config{
		Store:       memstore.New(),
		LinkBase:    "https://mail.example.com/parley/meetings/j/",
		DisplayName: func(_ context.Context, u jid.JID) string { return names[u.Address()] },
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	alice, bob := jid.MustParse("alice@example.com"), jid.MustParse("bob@example.com")
	st, err := svc.StartFromChat(ctx, alice, bob, meeting.ChatStart{Call: meeting.AudioCall})
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Meeting.Title)
	fmt.Println(st.Meeting.Organizer, st.Meeting.AllowGuests, strings.HasSuffix(st.Link, "?media=audio"))
	fmt.Println(strings.Replace(st.Message, st.Link, "<link>", 1))
	// Output:
	// Audio call: Alice Liddell and Bob Builder
	// alice@example.com true true
	// Alice Liddell started an audio call.
	// Join: <link>
}
