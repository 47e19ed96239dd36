package meeting

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// newToken returns n random bytes, base64url without padding. Link
// tokens take 18 (144 bits), credentials 32.
func newToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

const (
	linkTokenBytes  = 18
	credentialBytes = 32
)

// Password hashing: argon2id with the parameters OWASP recommends for
// an interactive login (19 MiB, 2 passes, 1 lane), in the PHC string
// format so parameters can change later without breaking stored hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashPassword(pw string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// checkPassword compares pw with an encoded hash in constant time. A
// hash it cannot read never matches.
func checkPassword(encoded, pw string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<20 || t > 16 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// throttle counts failures per key in fixed windows. A key over its limit
// is refused until its window ends.
type throttle struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	seen   map[string]*failures
}

type failures struct {
	start time.Time
	n     int
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, seen: make(map[string]*failures)}
}

// blocked returns how long key must still wait, or 0.
func (t *throttle) blocked(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.seen[key]
	if f == nil || now.Sub(f.start) >= t.window {
		return 0
	}
	if f.n >= t.limit {
		return f.start.Add(t.window).Sub(now)
	}
	return 0
}

// fail counts one failure for key.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.seen[key]
	if f == nil || now.Sub(f.start) >= t.window {
		// Forget expired keys now and then, so that the map is bounded by
		// the keys of one window.
		if len(t.seen) > 4096 {
			for k, g := range t.seen {
				if now.Sub(g.start) >= t.window {
					delete(t.seen, k)
				}
			}
		}
		f = &failures{start: now}
		t.seen[key] = f
	}
	f.n++
}

// Guest cookies: "<guest id>.<expiry unix>.<HMAC-SHA256 of both>", so a
// guest keeps the same identity (and any moderator rights granted to it)
// across joins, and nobody can claim another guest's id.
func signGuest(key []byte, id string, exp time.Time) string {
	payload := id + "." + strconv.FormatInt(exp.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// verifyGuest returns the guest id of a valid, unexpired cookie value.
func verifyGuest(key []byte, v string, now time.Time) (string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", false
	}
	payload, sig := v[:i], v[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return "", false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "", false
	}
	id, expText, ok := strings.Cut(payload, ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !ok || err != nil || id == "" || now.Unix() >= exp {
		return "", false
	}
	return id, true
}
