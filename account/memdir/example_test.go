package memdir_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/account/memdir"
)

// A toy host: two users and an alias, handed to Parley as both its
// Directory and its Authenticator (parley.Config{Directory: dir,
// Authenticator: dir}).
func Example() {
	ctx := context.Background()
	dir := memdir.New()
	dir.AddUser("Alice@Example.com", "Alice Liddell", "rabbit-hole", true)
	dir.AddUser("bob@example.com", "Bob Cratchit", "ledger", true)
	dir.AddAlias("sales@example.com", "Sales", "alice@example.com", "bob@example.com")

	found, _ := dir.Search(ctx, "example.com", "LIDDELL", 10)
	fmt.Println(found[0].Address, found[0].Name)

	members, _ := dir.Members(ctx, "sales@example.com")
	fmt.Println(members)

	fmt.Println(dir.CheckPassword(ctx, "alice@example.com", "rabbit-hole"))
	err := dir.CheckPassword(ctx, "sales@example.com", "anything")
	fmt.Println(errors.Is(err, account.ErrAuthFailed))

	creds, _ := dir.SCRAMCredentials(ctx, "bob@example.com", "SHA-256")
	fmt.Println(len(creds.Salt), creds.Iterations, len(creds.StoredKey))
	// Output:
	// alice@example.com Alice Liddell
	// [alice@example.com bob@example.com]
	// <nil>
	// true
	// 16 4096 32
}

// A host with many users warms their SCRAM credentials in the background
// and keeps them between runs, so that neither start nor first logins wait
// for PBKDF2.
func ExampleDir_Warm() {
	ctx := context.Background()
	dir := memdir.New()
	dir.AddUser("alice@example.com", "Alice", "rabbit-hole", true)

	// At start: what the last run saved (ExportCredentials, as JSON).
	var saved []memdir.Credential
	dir.ImportCredentials(saved)

	done := make(chan struct{})
	go func() {
		defer close(done)
		dir.Warm(ctx)
		saved = dir.ExportCredentials() // and write it to disk
	}()
	<-done
	fmt.Println(len(saved), saved[0].Address)

	// Next run, same password: the keys are taken as they are.
	next := memdir.New()
	next.AddUser("alice@example.com", "Alice", "rabbit-hole", true)
	fmt.Println(next.ImportCredentials(saved))
	// Output:
	// 1 alice@example.com
	// 1
}
