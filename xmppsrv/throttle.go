package xmppsrv

import (
	"sync"
	"time"
)

// throttle counts failed logins per account and per remote address in a
// fixed window; past the limit, logins are refused without asking the
// host until the window ends. Counting per address too stops one client
// from guessing many accounts' passwords.
type throttle struct {
	perAccount, perIP int
	window            time.Duration
	now               func() time.Time

	mu   sync.Mutex
	byID map[string]*failures
}

type failures struct {
	n     int
	reset time.Time
}

func newThrottle(perAccount, perIP int, window time.Duration) *throttle {
	return &throttle{perAccount: perAccount, perIP: perIP, window: window, now: time.Now, byID: make(map[string]*failures)}
}

// blocked returns how long logins for account from ip stay refused, 0 if
// they may proceed.
func (t *throttle) blocked(account, ip string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	wait := time.Duration(0)
	check := func(key string, limit int) {
		f := t.byID[key]
		if f == nil {
			return
		}
		if now.After(f.reset) {
			delete(t.byID, key)
			return
		}
		if f.n >= limit && f.reset.Sub(now) > wait {
			wait = f.reset.Sub(now)
		}
	}
	if account != "" {
		check("a:"+account, t.perAccount)
	}
	check("i:"+ip, t.perIP)
	return wait
}

// fail records one failed login.
func (t *throttle) fail(account, ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	bump := func(key string) {
		f := t.byID[key]
		if f == nil || now.After(f.reset) {
			f = &failures{reset: now.Add(t.window)}
			t.byID[key] = f
		}
		f.n++
	}
	if account != "" {
		bump("a:" + account)
	}
	bump("i:" + ip)
	if len(t.byID) > 100000 { // bound memory under a spray of addresses
		for k, f := range t.byID {
			if now.After(f.reset) {
				delete(t.byID, k)
			}
		}
	}
}

// succeed forgets the account's failures (not the address's: a client that
// guesses right once must not reset its budget for other accounts).
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	delete(t.byID, "a:"+account)
	t.mu.Unlock()
}
