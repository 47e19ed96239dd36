package media_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/parleyhq/parley/media"
)

// tokens is a toy join-token table; package meeting issues real ones.
var tokens = map[string]media.Grant{
	"t-alice": {Room: "standup", Participant: "alice", Name: "Alice", Role: media.Moderator, Limits: media.Limits{Recording: true}},
	"t-bob":   {Room: "standup", Participant: "bob", Name: "Bob"},
}

func Example() {
	sfu, err := media.New(media.Config{
		Authorizer: media.AuthorizerFunc(func(_ context.Context, cred string) (media.Grant, error) {
			g, ok := tokens[cred]
			if !ok {
				return media.Grant{}, errors.New("unknown token")
			}
			return g, nil
		}),
		UDPAddr: "127.0.0.1:0", // production: the default ":7882", one firewall rule
		ICEServers: []media.ICEServer{
			{URLs: []string{"turn:turn.example.com:3478"}, Secret: "shared-with-coturn"},
		},
		Recording: media.DirSink("/var/lib/parley/recordings"),
		OnEvent: func(e media.Event) {
			if e.Type == media.EventJoined {
				log.Printf("%s joined %s", e.Name, e.Room)
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sfu.Close()

	mux := http.NewServeMux()
	mux.Handle("/meet/signal", sfu.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	fmt.Println(strings.HasPrefix(srv.URL, "http://"), sfu.UDPAddr() != nil)
	// Output: true true
}

func ExampleTURNCredentials() {
	user, pass := media.TURNCredentials("s3cret", "alice", time.Unix(1700000000, 0))
	fmt.Println(user, pass)
	// Output: 1700000000:alice TtElzSjT0GdnTQ9xdcRNxx96yQs=
}
