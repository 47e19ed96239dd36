package parley_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/account/memdir"
)

// A toy mail host: two users and an alias in memory, a data directory for
// the embedded store, and the XMPP and HTTP listeners.
func Example() {
	users := memdir.New() // implements Directory, Authenticator and SCRAMProvider
	users.AddUser("alice@example.com", "Alice Liddell", "rabbit-hole", true)
	users.AddUser("bob@example.com", "Bob", "builder", true)
	users.AddAlias("sales@example.com", "Sales", "alice@example.com", "bob@example.com")

	dataDir, _ := os.MkdirTemp("", "parley-example")
	defer os.RemoveAll(dataDir)

	srv, err := parley.New(parley.Config{
		Domains:       []string{"example.com"},
		Directory:     users,
		Authenticator: users,
		TLS:           &tls.Config{ /* the host's certificate */ },
		DataDir:       dataDir,
	})
	if err != nil {
		log.Fatal(err)
	}
	xmpp, _ := net.Listen("tcp", "127.0.0.1:0") // :5222 in production
	go srv.ServeXMPP(xmpp)

	mux := http.NewServeMux()
	mux.Handle("/parley/", http.StripPrefix("/parley", srv.Handler()))
	mux.Handle("/metrics", srv.MetricsHandler())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx))
	// Output: <nil>
}
