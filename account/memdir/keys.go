package memdir

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/parleyhq/parley/account"
)

// Iterations is the PBKDF2 iteration count of derived credentials, the
// minimum RFC 7677 allows and what XMPP clients expect.
const Iterations = 4096

// maxIterations bounds imported iteration counts, which every PLAIN login
// then pays for.
const maxIterations = 1 << 20

const saltLen = 16

// cred holds one user's password until it is derived, then the keys.
type cred struct {
	// mu serialises deriving and importing, so that each happens once and
	// concurrent callers wait for the one under way. It is never held
	// together with Dir.mu.
	mu       sync.Mutex
	password string // guarded by mu; emptied once keys is set
	salt     []byte // immutable
	keys     atomic.Pointer[keys]
}

// keys are a user's derived credentials. They are immutable once stored.
type keys struct {
	salt       []byte
	iterations int
	sha1       account.SCRAMCredentials
	sha256     account.SCRAMCredentials
	check      []byte // passwordCheck(salt, password)
}

func newCred(password string) (*cred, error) {
	if password == "" {
		return nil, errNoPassword
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	return &cred{password: password, salt: salt}, nil
}

// passwordCheck lets ImportCredentials tell whether exported keys belong
// to the current password without running PBKDF2.
func passwordCheck(salt []byte, password string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(password))
	return m.Sum(nil)
}

func derive(password string, salt []byte, iterations int) (*keys, error) {
	s1, err := account.DeriveSCRAM("SHA-1", password, salt, iterations)
	if err != nil {
		return nil, fmt.Errorf("memdir: %w", err)
	}
	s256, err := account.DeriveSCRAM("SHA-256", password, salt, iterations)
	if err != nil {
		return nil, fmt.Errorf("memdir: %w", err)
	}
	return &keys{salt: salt, iterations: iterations, sha1: s1, sha256: s256, check: passwordCheck(salt, password)}, nil
}

// keysOf returns c's keys, deriving them first if need be. Only c.mu is
// held while deriving, so other users are not held up.
func (d *Dir) keysOf(c *cred) (*keys, error) {
	if k := c.keys.Load(); k != nil {
		return k, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.keys.Load(); k != nil {
		return k, nil
	}
	k, err := derive(c.password, c.salt, Iterations)
	if err != nil {
		return nil, err
	}
	d.derivations.Add(1)
	c.password = ""
	c.keys.Store(k)
	return k, nil
}

// CheckPassword reports whether password is address's: nil when it is, an
// error wrapping account.ErrAuthFailed when it is not, when the user is
// unknown or when the address is an alias. It costs one PBKDF2-SHA-256
// (plus the user's first derivation, if not done yet) whatever the
// outcome, and compares in constant time. It implements
// account.Authenticator.
func (d *Dir) CheckPassword(ctx context.Context, address, password string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := d.user(address)
	if c == nil {
		account.DeriveSCRAM("SHA-256", password, d.dummySalt, Iterations)
		return fmt.Errorf("memdir: %w", account.ErrAuthFailed)
	}
	k, err := d.keysOf(c)
	if err != nil {
		return err
	}
	got, err := account.DeriveSCRAM("SHA-256", password, k.salt, k.iterations)
	if err != nil {
		return fmt.Errorf("memdir: %w", err)
	}
	if subtle.ConstantTimeCompare(got.StoredKey, k.sha256.StoredKey) != 1 {
		return fmt.Errorf("memdir: %w", account.ErrAuthFailed)
	}
	return nil
}

// SCRAMCredentials returns address's credentials for the hash "SHA-1" or
// "SHA-256", deriving them on first use. An unknown user or an alias gets
// an error wrapping account.ErrAuthFailed, another hash one wrapping
// account.ErrNotFound. It implements account.SCRAMProvider.
func (d *Dir) SCRAMCredentials(ctx context.Context, address, hash string) (account.SCRAMCredentials, error) {
	if hash != "SHA-1" && hash != "SHA-256" {
		return account.SCRAMCredentials{}, fmt.Errorf("memdir: no %q credentials: %w", hash, account.ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return account.SCRAMCredentials{}, err
	}
	c := d.user(address)
	if c == nil {
		return account.SCRAMCredentials{}, fmt.Errorf("memdir: %w", account.ErrAuthFailed)
	}
	k, err := d.keysOf(c)
	if err != nil {
		return account.SCRAMCredentials{}, err
	}
	s := k.sha256
	if hash == "SHA-1" {
		s = k.sha1
	}
	return account.SCRAMCredentials{
		Salt:       bytes.Clone(s.Salt),
		Iterations: s.Iterations,
		StoredKey:  bytes.Clone(s.StoredKey),
		ServerKey:  bytes.Clone(s.ServerKey),
	}, nil
}

// Warm derives the credentials of every user that has none yet, one user
// at a time on the calling goroutine, and returns when all are done or ctx
// ends. A host with many users runs it in the background at start so that
// first logins do not pay for PBKDF2. Users added while Warm runs may be
// left for their first login. Logins go on during Warm; one for the user
// being derived waits for that derivation only.
func (d *Dir) Warm(ctx context.Context) {
	d.mu.RLock()
	todo := make([]*cred, 0, len(d.entries))
	for _, e := range d.entries {
		if e.cred != nil && e.cred.keys.Load() == nil {
			todo = append(todo, e.cred)
		}
	}
	d.mu.RUnlock()
	for _, c := range todo {
		if ctx.Err() != nil {
			return
		}
		d.keysOf(c)
	}
}

// Credential is one user's derived keys as ExportCredentials gives them,
// for a host to keep between runs (in JSON, []byte fields are base64).
// Treat it like a password file: PasswordCheck lets a holder test guesses
// at the password quickly, and the keys let one who also sees a login
// impersonate the user (RFC 5802 section 9).
type Credential struct {
	Address         string `json:"address"`
	Salt            []byte `json:"salt"`
	Iterations      int    `json:"iterations"`
	SHA1StoredKey   []byte `json:"sha1_stored_key"`
	SHA1ServerKey   []byte `json:"sha1_server_key"`
	SHA256StoredKey []byte `json:"sha256_stored_key"`
	SHA256ServerKey []byte `json:"sha256_server_key"`
	// PasswordCheck is HMAC-SHA-256(key = Salt, message = password). It
	// lets ImportCredentials accept the keys only for the password they
	// were derived from.
	PasswordCheck []byte `json:"password_check"`
}

// ExportCredentials returns the derived credentials of every user that
// has them, ordered by address. Users not derived yet are left out.
func (d *Dir) ExportCredentials() []Credential {
	d.mu.RLock()
	var out []Credential
	for _, e := range d.entries {
		if e.cred == nil {
			continue
		}
		k := e.cred.keys.Load()
		if k == nil {
			continue
		}
		out = append(out, Credential{
			Address:         e.e.Address,
			Salt:            bytes.Clone(k.salt),
			Iterations:      k.iterations,
			SHA1StoredKey:   bytes.Clone(k.sha1.StoredKey),
			SHA1ServerKey:   bytes.Clone(k.sha1.ServerKey),
			SHA256StoredKey: bytes.Clone(k.sha256.StoredKey),
			SHA256ServerKey: bytes.Clone(k.sha256.ServerKey),
			PasswordCheck:   bytes.Clone(k.check),
		})
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Credential) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

// ImportCredentials installs previously exported credentials and returns
// how many it accepted. A credential is accepted only for a user of the
// Dir whose keys are not derived yet, whose current password matches its
// PasswordCheck, and whose key sizes and iteration count are sound; the
// rest are ignored (the user is derived as usual). It runs no PBKDF2, so
// it is fast for any number of users.
func (d *Dir) ImportCredentials(creds []Credential) int {
	n := 0
	for _, ic := range creds {
		if len(ic.Salt) == 0 || ic.Iterations < Iterations || ic.Iterations > maxIterations ||
			len(ic.SHA1StoredKey) != sha1.Size || len(ic.SHA1ServerKey) != sha1.Size ||
			len(ic.SHA256StoredKey) != sha256.Size || len(ic.SHA256ServerKey) != sha256.Size ||
			len(ic.PasswordCheck) != sha256.Size {
			continue
		}
		c := d.user(ic.Address)
		if c == nil {
			continue
		}
		salt := bytes.Clone(ic.Salt)
		k := &keys{
			salt:       salt,
			iterations: ic.Iterations,
			sha1: account.SCRAMCredentials{Salt: salt, Iterations: ic.Iterations,
				StoredKey: bytes.Clone(ic.SHA1StoredKey), ServerKey: bytes.Clone(ic.SHA1ServerKey)},
			sha256: account.SCRAMCredentials{Salt: salt, Iterations: ic.Iterations,
				StoredKey: bytes.Clone(ic.SHA256StoredKey), ServerKey: bytes.Clone(ic.SHA256ServerKey)},
			check: bytes.Clone(ic.PasswordCheck),
		}
		c.mu.Lock()
		if c.keys.Load() == nil && hmac.Equal(passwordCheck(salt, c.password), ic.PasswordCheck) {
			c.password = ""
			c.keys.Store(k)
			n++
		}
		c.mu.Unlock()
	}
	return n
}
