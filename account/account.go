// Package account holds what Parley asks of the mail host about its
// accounts: the Directory of users and aliases, and the Authenticator that
// checks passwords. The root package re-exports these names (parley.Directory,
// parley.Authenticator); they live here so that every tier of Parley can use
// them without importing the root.
package account

import (
	"context"
	"errors"
	"net/http"
)

// Sentinel errors a host returns; Parley checks them with errors.Is.
var (
	// ErrNotFound: no user or alias has that address.
	ErrNotFound = errors.New("account: not found")
	// ErrAuthFailed: the credentials are wrong or the account may not log in.
	// Parley answers every such case the same way, so that a client cannot
	// tell an unknown user from a wrong password.
	ErrAuthFailed = errors.New("account: authentication failed")
)

// Kind tells a user from an alias.
type Kind int

const (
	// User is a mailbox that can log in.
	User Kind = iota
	// Alias is an address that forwards to its members; it cannot log in.
	Alias
)

func (k Kind) String() string {
	if k == Alias {
		return "alias"
	}
	return "user"
}

// Entry is one address in the host's directory.
type Entry struct {
	// Address is the mail address, user@domain. Parley compares addresses
	// case-insensitively; the host may return them in any case.
	Address string
	// Name is the display name ("Alice Liddell"); empty means none.
	Name string
	Kind Kind
	// ChatEnabled reports whether a user has turned chat on (in the seed
	// products: logged into webmail once). Users who are not chat-enabled
	// are left out of the domain roster and cannot be messaged. Ignored for
	// aliases.
	ChatEnabled bool
}

// Directory is the host's address book of users and aliases. Parley calls
// it concurrently from many goroutines; implementations must be safe for
// that. Every method takes the caller's context and should honour its
// cancellation.
type Directory interface {
	// Lookup returns the entry for an address (user@domain), or an error
	// wrapping ErrNotFound.
	Lookup(ctx context.Context, address string) (Entry, error)
	// List returns every user and alias of a domain. Parley caches the
	// result for Config.DirectoryRefresh, so it may be slow-ish.
	List(ctx context.Context, domain string) ([]Entry, error)
	// Search returns up to limit entries of the domain whose name or
	// address contains query, case-insensitively.
	Search(ctx context.Context, domain, query string, limit int) ([]Entry, error)
	// Members returns the member addresses of an alias, or an error
	// wrapping ErrNotFound when the address is not an alias.
	Members(ctx context.Context, alias string) ([]string, error)
}

// Authenticator checks the credentials of a user logging in. The address
// is always the full, lower-cased mail address (user@domain), whatever form
// the client typed. Safe for concurrent use.
type Authenticator interface {
	// CheckPassword returns nil when password is right for address, and an
	// error wrapping ErrAuthFailed when it is not or the user may not log
	// in. Other errors are treated as a temporary failure of the host.
	CheckPassword(ctx context.Context, address, password string) error
}

// SCRAMCredentials are the values RFC 5802 lets a server keep instead of a
// password: the salted password never leaves the host.
type SCRAMCredentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// SCRAMProvider is an optional add-on to Authenticator. When the host's
// Authenticator implements it, Parley offers SCRAM-SHA-256 and SCRAM-SHA-1
// and prefers them to PLAIN.
type SCRAMProvider interface {
	// SCRAMCredentials returns the stored credentials of address for the
	// hash "SHA-1" or "SHA-256", an error wrapping ErrAuthFailed for an
	// unknown user, or one wrapping ErrNotFound when the host has no
	// credentials for that hash (Parley then does not complete that
	// mechanism for this user).
	SCRAMCredentials(ctx context.Context, address, hash string) (SCRAMCredentials, error)
}

// RequestAuthenticator is an optional add-on to Authenticator that
// recognises the host's own logged-in webmail session on an HTTP request,
// so the chat panel in the webmail needs no second login. Parley honours it
// only for requests from the page's own origin (or Config.WebOrigins).
type RequestAuthenticator interface {
	// AuthenticateRequest returns the full mail address of the user whose
	// webmail session made r, or an error when there is none.
	AuthenticateRequest(r *http.Request) (address string, err error)
}
