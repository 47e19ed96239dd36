package meeting_test

import (
	"context"
	"fmt"

	"github.com/parleyhq/parley/jid"
	"github.com/parleyhq/parley/meeting"
	"github.com/parleyhq/parley/storage/memstore"
)

// A host makes a meeting for a user, a guest joins it by the link, and
// the media layer checks the guest's credential.
func Example() {
	ctx := context.Background()
	svc, err := meeting.New(meeting.Config{
		Store:    memstore.New(),
		Files:    new(meeting.MemFiles),
		LinkBase: "https://mail.example.com/parley/meetings/j/",
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	alice := jid.MustParse("alice@example.com")
	title, guests := "Weekly sync", true
	m, err := svc.Create(ctx, alice, meeting.Change{Title: &title, AllowGuests: &guests})
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Title, len(m.Link) > len("https://mail.example.com/parley/meetings/j/"))

	ticket, err := svc.Join(ctx, m.Token, meeting.JoinRequest{Name: "Grace", ClientAddr: "192.0.2.7"})
	if err != nil {
		panic(err)
	}
	p, err := svc.Authorize(ctx, ticket.Credential)
	fmt.Println(p.Name, p.Role, p.State, err)
	// Output:
	// Weekly sync true
	// Grace guest in <nil>
}
