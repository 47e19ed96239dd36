package memdir

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parleyhq/parley/account"
)

// The Dir must satisfy every interface Parley looks for.
var (
	_ account.Directory     = (*Dir)(nil)
	_ account.Authenticator = (*Dir)(nil)
	_ account.SCRAMProvider = (*Dir)(nil)
)

func addresses(es []account.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Address)
	}
	return out
}

func sample(t *testing.T) *Dir {
	t.Helper()
	d := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.AddUser("Alice@Example.COM", "Alice Liddell", "alice-pw", true))
	must(d.AddUser("bob@example.com", "Bob Cratchit", "bob-pw", true))
	must(d.AddUser("carol@example.com", "Carol Singer", "carol-pw", false))
	must(d.AddUser("dave@other.org", "Dave Alison", "dave-pw", true))
	must(d.AddAlias("sales@example.com", "Sales", "ALICE@example.com", "bob@example.com", "alice@example.com"))
	return d
}

func TestAddUserNormalisesAndRejects(t *testing.T) {
	ctx := context.Background()
	d := sample(t)
	e, err := d.Lookup(ctx, "ALICE@EXAMPLE.com")
	if err != nil {
		t.Fatal(err)
	}
	want := account.Entry{Address: "alice@example.com", Name: "Alice Liddell", Kind: account.User, ChatEnabled: true}
	if e != want {
		t.Errorf("Lookup = %+v, want %+v", e, want)
	}
	// Fullwidth letters need more than strings.ToLower to match.
	if e, err := d.Lookup(ctx, "ａlice@example.com"); err != nil || e.Address != "alice@example.com" {
		t.Errorf("Lookup(fullwidth) = %+v, %v", e, err)
	}
	for _, bad := range []string{"", "alice", "@example.com", "alice@", "alice@example.com/home", "a b@example.com"} {
		if err := d.AddUser(bad, "", "pw", true); err == nil {
			t.Errorf("AddUser(%q) succeeded", bad)
		}
	}
	if err := d.AddUser("ALICE@example.com", "", "pw", true); err == nil {
		t.Error("AddUser of a duplicate (other case) succeeded")
	}
	if err := d.AddAlias("bob@example.com", "Bob"); err == nil {
		t.Error("AddAlias over a user succeeded")
	}
	if err := d.AddAlias("team@example.com", "Team", "not an address"); err == nil {
		t.Error("AddAlias with a malformed member succeeded")
	}
	if err := d.AddUser("eve@example.com", "", "", true); err == nil {
		t.Error("AddUser with an empty password succeeded")
	}
	if err := d.SetPassword("bob@example.com", ""); err == nil {
		t.Error("SetPassword to empty succeeded")
	}
}

func TestDirectory(t *testing.T) {
	ctx := context.Background()
	d := sample(t)

	all, err := d.List(ctx, "Example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := addresses(all), []string{"alice@example.com", "bob@example.com", "carol@example.com", "sales@example.com"}; !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if all[3].Kind != account.Alias || all[3].ChatEnabled || all[2].ChatEnabled {
		t.Errorf("List kinds/flags wrong: %+v", all)
	}

	for _, c := range []struct {
		q     string
		limit int
		want  []string
	}{
		{"ALI", 0, []string{"alice@example.com"}},     // name and address
		{"alison", 0, nil},                            // other domain
		{"SINGER", 10, []string{"carol@example.com"}}, // name only
		{"example.com", 2, []string{"alice@example.com", "bob@example.com"}},
		{"", -1, []string{"alice@example.com", "bob@example.com", "carol@example.com", "sales@example.com"}},
	} {
		got, err := d.Search(ctx, "example.com", c.q, c.limit)
		if err != nil || !slices.Equal(addresses(got), c.want) {
			t.Errorf("Search(%q, %d) = %v, %v; want %v", c.q, c.limit, addresses(got), err, c.want)
		}
	}

	m, err := d.Members(ctx, "Sales@example.com")
	if err != nil || !slices.Equal(m, []string{"alice@example.com", "bob@example.com"}) {
		t.Errorf("Members = %v, %v", m, err)
	}
	if _, err := d.Members(ctx, "alice@example.com"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("Members(user) error = %v, want ErrNotFound", err)
	}
	if _, err := d.Lookup(ctx, "nobody@example.com"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("Lookup(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := d.Lookup(ctx, "not an address"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("Lookup(malformed) error = %v, want ErrNotFound", err)
	}

	if err := d.SetChatEnabled("CAROL@example.com", true); err != nil {
		t.Fatal(err)
	}
	if e, _ := d.Lookup(ctx, "carol@example.com"); !e.ChatEnabled {
		t.Error("SetChatEnabled did not stick")
	}
	if err := d.SetChatEnabled("sales@example.com", true); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("SetChatEnabled(alias) = %v, want ErrNotFound", err)
	}
	if err := d.Remove("bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Lookup(ctx, "bob@example.com"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("Lookup after Remove = %v", err)
	}
	if err := d.CheckPassword(ctx, "bob@example.com", "bob-pw"); !errors.Is(err, account.ErrAuthFailed) {
		t.Errorf("CheckPassword after Remove = %v", err)
	}
	if err := d.Remove("bob@example.com"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("second Remove = %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.List(cctx, "example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	ctx := context.Background()
	d := sample(t)
	if err := d.CheckPassword(ctx, "alice@example.com", "alice-pw"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := d.CheckPassword(ctx, "Alice@Example.com", "alice-pw"); err != nil {
		t.Fatalf("right password, other case: %v", err)
	}
	for _, c := range []struct{ addr, pw string }{
		{"alice@example.com", "Alice-pw"},
		{"alice@example.com", ""},
		{"alice@example.com", "bob-pw"},
		{"nobody@example.com", "alice-pw"},
		{"sales@example.com", ""},
		{"sales@example.com", "alice-pw"},
	} {
		if err := d.CheckPassword(ctx, c.addr, c.pw); !errors.Is(err, account.ErrAuthFailed) {
			t.Errorf("CheckPassword(%s, %q) = %v, want ErrAuthFailed", c.addr, c.pw, err)
		}
	}
	if err := d.SetPassword("alice@example.com", "new-pw"); err != nil {
		t.Fatal(err)
	}
	if err := d.CheckPassword(ctx, "alice@example.com", "alice-pw"); !errors.Is(err, account.ErrAuthFailed) {
		t.Errorf("old password after SetPassword = %v", err)
	}
	if err := d.CheckPassword(ctx, "alice@example.com", "new-pw"); err != nil {
		t.Errorf("new password after SetPassword = %v", err)
	}
}

// Many logins for one user at once derive its keys once, and a derivation
// happens only when something needs it.
func TestLazyDerivationOnce(t *testing.T) {
	ctx := context.Background()
	d := New()
	for i := range 5 {
		if err := d.AddUser(fmt.Sprintf("u%d@example.com", i), "", "pw", true); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.derivations.Load(); n != 0 {
		t.Fatalf("%d derivations before any login", n)
	}
	if _, err := d.List(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				err = d.CheckPassword(ctx, "u0@example.com", "pw")
			case 1:
				_, err = d.SCRAMCredentials(ctx, "u0@example.com", "SHA-1")
			default:
				_, err = d.SCRAMCredentials(ctx, "U0@example.com", "SHA-256")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := d.derivations.Load(); n != 1 {
		t.Errorf("%d derivations for one user, want 1", n)
	}
	if n := len(d.ExportCredentials()); n != 1 {
		t.Errorf("export holds %d users, want the 1 derived", n)
	}
}

func TestWarm(t *testing.T) {
	ctx := context.Background()
	d := New()
	for i := range 10 {
		if err := d.AddUser(fmt.Sprintf("u%d@example.com", i), "", fmt.Sprint("pw", i), true); err != nil {
			t.Fatal(err)
		}
	}
	d.AddAlias("all@example.com", "All", "u1@example.com")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	d.Warm(cancelled)
	if n := d.derivations.Load(); n != 0 {
		t.Errorf("Warm with a cancelled context derived %d users", n)
	}

	d.CheckPassword(ctx, "u3@example.com", "pw3")
	d.Warm(ctx)
	if n := d.derivations.Load(); n != 10 {
		t.Errorf("%d derivations after Warm, want 10", n)
	}
	d.Warm(ctx)
	for i := range 10 {
		if err := d.CheckPassword(ctx, fmt.Sprintf("u%d@example.com", i), fmt.Sprint("pw", i)); err != nil {
			t.Error(err)
		}
	}
	if n := d.derivations.Load(); n != 10 {
		t.Errorf("%d derivations after a second Warm and logins, want 10", n)
	}
}

// Directory reads and writes, logins and Warm may all run at once.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	d := sample(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				a := fmt.Sprintf("w%d-%d@example.com", w, i)
				if err := d.AddUser(a, "Worker", "pw", true); err != nil {
					t.Error(err)
				}
				d.SetChatEnabled(a, i%2 == 0)
				d.List(ctx, "example.com")
				d.Search(ctx, "example.com", "worker", 5)
				d.Lookup(ctx, a)
				if i%5 == 0 {
					if err := d.CheckPassword(ctx, a, "pw"); err != nil {
						t.Error(err)
					}
				}
				if i%3 == 0 {
					d.SetPassword(a, "pw2")
					d.Remove(a)
				}
			}
		})
	}
	wg.Go(func() { d.Warm(ctx) })
	wg.Go(func() { d.ImportCredentials(d.ExportCredentials()) })
	wg.Wait()
}
