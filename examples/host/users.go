package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parleyhq/parley/account/memdir"
)

// usersFile is the JSON form of the host's users and aliases.
type usersFile struct {
	Users []userSpec `json:"users"`
	// Aliases maps an alias address to its members.
	Aliases map[string][]string `json:"aliases,omitempty"`
}

type userSpec struct {
	Address  string `json:"address"`
	Name     string `json:"name,omitempty"`
	Password string `json:"password"`
	// ChatEnabled defaults to true when absent.
	ChatEnabled *bool `json:"chat_enabled,omitempty"`
}

// usersSource is a loaded users file and where it came from.
type usersSource struct {
	file usersFile
	path string
	demo bool // the data directory's own users.json, made on first run
}

func (u *usersSource) count() int { return len(u.file.Users) }

// loadUsers reads -users, or else <data>/users.json, making demo users
// there on first run.
func loadUsers(o options, log *slog.Logger) (*usersSource, error) {
	if o.users != "" {
		f, err := readUsers(o.users)
		return &usersSource{file: f, path: o.users}, err
	}
	path := filepath.Join(o.data, "users.json")
	f, err := readUsers(path)
	if err == nil {
		return &usersSource{file: f, path: path, demo: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f = demoUsers(o.domain)
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	// The file holds passwords.
	if err := writeFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return nil, err
	}
	log.Info("made demo users", "file", path)
	return &usersSource{file: f, path: path, demo: true}, nil
}

func readUsers(path string) (usersFile, error) {
	var f usersFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func demoUsers(domain string) usersFile {
	yes := true
	var f usersFile
	for _, u := range []struct{ local, name string }{
		{"alice", "Alice Liddell"},
		{"bob", "Bob Cratchit"},
		{"carol", "Carol Singer"},
	} {
		f.Users = append(f.Users, userSpec{
			Address:     u.local + "@" + domain,
			Name:        u.name,
			Password:    strings.ToLower(rand.Text()[:16]),
			ChatEnabled: &yes,
		})
	}
	f.Aliases = map[string][]string{"sales@" + domain: {"alice@" + domain, "bob@" + domain}}
	return f
}

// directory builds the memdir from the file. The domains served are the
// -domain flag first, then any other domain the file's addresses use.
func (u *usersSource) directory(domain string) (*memdir.Dir, []string, error) {
	domain = strings.ToLower(strings.TrimSpace(domain))
	dir := memdir.New()
	domains := []string{domain}
	addDomain := func(addr string) {
		if i := strings.LastIndexByte(addr, '@'); i >= 0 {
			if d := strings.ToLower(addr[i+1:]); !slices.Contains(domains, d) {
				domains = append(domains, d)
			}
		}
	}
	for i, us := range u.file.Users {
		if us.Password == "" {
			return nil, nil, fmt.Errorf("user %d (%s) has no password", i+1, us.Address)
		}
		chat := us.ChatEnabled == nil || *us.ChatEnabled
		if err := dir.AddUser(us.Address, us.Name, us.Password, chat); err != nil {
			return nil, nil, fmt.Errorf("user %d: %w", i+1, err)
		}
		addDomain(us.Address)
	}
	for _, a := range slices.Sorted(maps.Keys(u.file.Aliases)) {
		if err := dir.AddAlias(a, aliasName(a), u.file.Aliases[a]...); err != nil {
			return nil, nil, err
		}
		addDomain(a)
	}
	slices.Sort(domains[1:])
	return dir, domains, nil
}

// aliasName makes a display name from an alias's local part:
// "sales@..." is "Sales", "first-line.support@..." is "First Line Support".
func aliasName(address string) string {
	local, _, _ := strings.Cut(address, "@")
	words := strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '-' || r == '_' || r == '+' })
	for i, w := range words {
		r, n := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToUpper(r)) + w[n:]
	}
	return strings.Join(words, " ")
}

// printUsers lists up to max users with their passwords, and the aliases.
func (u *usersSource) printUsers(w io.Writer, max int) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for i, us := range u.file.Users {
		if i == max {
			fmt.Fprintf(tw, "  ... and %d more\n", len(u.file.Users)-max)
			break
		}
		fmt.Fprintf(tw, "  %s\tpassword: %s\t%s\n", us.Address, us.Password, us.Name)
	}
	for _, a := range slices.Sorted(maps.Keys(u.file.Aliases)) {
		fmt.Fprintf(tw, "  %s\talias of %s\n", a, strings.Join(u.file.Aliases[a], ", "))
	}
	tw.Flush()
}

// scramCache keeps derived SCRAM keys between runs in a JSON file, so that
// a restart does not run PBKDF2 again for every user.
type scramCache struct {
	path     string
	log      *slog.Logger
	imported int // keys taken from the file at start
}

type scramCacheFile struct {
	Version     int                 `json:"version"`
	Credentials []memdir.Credential `json:"credentials"`
}

func (c *scramCache) load(dir *memdir.Dir) {
	data, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var f scramCacheFile
	if err == nil {
		err = json.Unmarshal(data, &f)
	}
	if err == nil && f.Version != 1 {
		err = fmt.Errorf("unknown version %d", f.Version)
	}
	if err != nil {
		c.log.Warn("ignoring the SCRAM key cache; keys will be derived again", "file", c.path, "err", err)
		return
	}
	c.imported = dir.ImportCredentials(f.Credentials)
	c.log.Info("SCRAM keys loaded", "file", c.path, "accepted", c.imported, "in_file", len(f.Credentials))
}

// save writes the keys derived so far when there are more than the file
// gave. Users only get keys during a run, never lose them, so a count is
// enough to tell.
func (c *scramCache) save(dir *memdir.Dir) {
	creds := dir.ExportCredentials()
	if len(creds) <= c.imported {
		return
	}
	t := time.Now()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(scramCacheFile{Version: 1, Credentials: creds}); err != nil {
		c.log.Error("cannot encode the SCRAM key cache", "err", err)
		return
	}
	// Like a password file: its reader can test password guesses fast.
	if err := writeFileAtomic(c.path, buf.Bytes(), 0o600); err != nil {
		c.log.Error("cannot save the SCRAM key cache", "err", err)
		return
	}
	c.imported = len(creds)
	c.log.Info("SCRAM keys saved", "file", c.path, "users", len(creds), "took", time.Since(t).Round(time.Millisecond))
}

// writeFileAtomic replaces path with data, so that a crash leaves the old
// file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
