package xmppsrv

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/account"
	"github.com/parleyhq/parley/jid"
)

// mechanisms lists the SASL mechanisms offered, strongest first. SCRAM is
// offered only when the host's Authenticator can give SCRAM credentials.
func (s *Server) mechanisms() []string {
	if _, ok := s.cfg.Auth.(account.SCRAMProvider); ok {
		return []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}
	}
	return []string{"PLAIN"}
}

// mechanisms are the server's mechanisms for this stream, with EXTERNAL
// first when the webmail session vouches for the user.
func (s *Session) mechanisms() []string {
	if s.external != "" {
		return append([]string{"EXTERNAL"}, s.srv.mechanisms()...)
	}
	return s.srv.mechanisms()
}

// saslFailure is a SASL failure condition (RFC 6120 6.5).
type saslFailure struct {
	cond, text string
}

func (f *saslFailure) Error() string { return f.cond + ": " + f.text }

// scramState is the server side of a SCRAM exchange between the client's
// first and final messages.
type scramState struct {
	hashName    string
	h           func() hash.Hash
	address     string
	creds       account.SCRAMCredentials
	nonce       string
	clientFirst string // client-first-message-bare
	serverFirst string
	gs2         string
	unknown     bool // the user does not exist: fail at the end, not before
}

func (s *Session) handleSASL(el *Element) error {
	switch el.Local {
	case "auth":
		return s.saslAuth(el)
	case "abort":
		s.scram = nil
		s.writeNow(failureBytes(&saslFailure{cond: "aborted"}))
		return nil
	case "response":
		if s.scram == nil {
			return s.saslFail(&saslFailure{cond: "malformed-request", text: "no SASL exchange is under way"})
		}
		return s.scramFinal(el)
	}
	return serr("unsupported-stanza-type", "unexpected <%s/> during SASL", el.Local)
}

func failureBytes(f *saslFailure) []byte {
	var b strings.Builder
	b.WriteString(`<failure xmlns="` + nsSASL + `"><` + f.cond + `/>`)
	if f.text != "" {
		b.WriteString(`<text xml:lang="en">` + xmlEscape(f.text) + `</text>`)
	}
	b.WriteString("</failure>")
	return []byte(b.String())
}

// saslFail reports a failure; after three in one stream the stream ends
// (RFC 6120 6.4.5 lets the server limit retries).
func (s *Session) saslFail(f *saslFailure) error {
	s.scram = nil
	s.writeNow(failureBytes(f))
	s.authFails++
	if s.authFails >= 3 {
		return serr("policy-violation", "too many failed authentication attempts on this connection")
	}
	return nil
}

func decodeB64(el *Element) ([]byte, error) {
	t := strings.TrimSpace(el.Text())
	if t == "" || t == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(t)
}

// normalizeUser turns what the client typed (the full mail address or its
// local part) into the account's bare JID on this stream's domain.
func (s *Session) normalizeUser(authcid string) (jid.JID, error) {
	if !strings.Contains(authcid, "@") {
		authcid += "@" + s.domain
	}
	j, err := jid.Parse(authcid)
	if err != nil || j.Local() == "" || j.Resource() != "" {
		return jid.JID{}, errors.New("the username must be a mail address or its local part")
	}
	if !s.srv.Local(j.Domain()) {
		return jid.JID{}, fmt.Errorf("%s is not a domain of this server", j.Domain())
	}
	return j, nil
}

func (s *Session) saslAuth(el *Element) error {
	if !s.secure && !s.srv.cfg.AllowUnencrypted {
		return s.saslFail(&saslFailure{cond: "encryption-required", text: "start TLS first"})
	}
	mech := el.Get("mechanism")
	offered := false
	for _, m := range s.mechanisms() {
		offered = offered || m == mech
	}
	if !offered {
		return s.saslFail(&saslFailure{cond: "invalid-mechanism", text: "offered: " + strings.Join(s.mechanisms(), ", ")})
	}
	data, err := decodeB64(el)
	if err != nil {
		return s.saslFail(&saslFailure{cond: "incorrect-encoding", text: "the initial response is not base64"})
	}
	if wait := s.srv.throttle.blocked("", s.remote); wait > 0 {
		return s.throttled(wait)
	}
	switch mech {
	case "EXTERNAL":
		user, err := s.normalizeUser(s.external)
		if err != nil {
			return s.saslFail(&saslFailure{cond: "not-authorized", text: err.Error()})
		}
		if az := string(data); az != "" {
			if aj, err := jid.Parse(az); err != nil || aj.Bare() != user {
				return s.saslFail(&saslFailure{cond: "invalid-authzid", text: "the webmail session is " + user.String()})
			}
		}
		return s.authSucceeded(user, nil)
	case "PLAIN":
		return s.plain(data)
	case "SCRAM-SHA-1":
		return s.scramFirst("SHA-1", data)
	case "SCRAM-SHA-256":
		return s.scramFirst("SHA-256", data)
	}
	return s.saslFail(&saslFailure{cond: "invalid-mechanism"})
}

func (s *Session) throttled(wait time.Duration) error {
	s.srv.m.Throttled.Add(1)
	wait = wait.Round(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	return s.saslFail(&saslFailure{cond: "temporary-auth-failure",
		text: fmt.Sprintf("too many failed logins; try again in %s", wait)})
}

func (s *Session) plain(data []byte) error {
	parts := bytes.Split(data, []byte{0})
	if len(parts) != 3 {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "PLAIN needs authzid NUL authcid NUL password"})
	}
	user, err := s.normalizeUser(string(parts[1]))
	if err != nil {
		return s.saslFail(&saslFailure{cond: "not-authorized", text: err.Error()})
	}
	if az := string(parts[0]); az != "" {
		if aj, err := jid.Parse(az); err != nil || aj.Bare() != user {
			return s.saslFail(&saslFailure{cond: "invalid-authzid", text: "you may only log in as yourself"})
		}
	}
	if wait := s.srv.throttle.blocked(user.Address(), s.remote); wait > 0 {
		return s.throttled(wait)
	}
	err = s.srv.cfg.Auth.CheckPassword(s.ctx(), user.Address(), string(parts[2]))
	if err != nil {
		return s.authFailed(user, err)
	}
	return s.authSucceeded(user, nil)
}

func (s *Session) authFailed(user jid.JID, err error) error {
	if !errors.Is(err, account.ErrAuthFailed) {
		s.srv.log.Error("authenticator failed", "user", user.Address(), "err", err)
		return s.saslFail(&saslFailure{cond: "temporary-auth-failure", text: "the account service is unavailable; try again later"})
	}
	s.srv.m.AuthFailures.Add(1)
	s.srv.throttle.fail(user.Address(), s.remote)
	s.srv.log.Info("login failed", "user", user.Address(), "remote", s.remote)
	return s.saslFail(&saslFailure{cond: "not-authorized", text: "wrong username or password"})
}

func (s *Session) authSucceeded(user jid.JID, additional []byte) error {
	s.srv.throttle.succeed(user.Address())
	s.srv.m.Logins.Add(1)
	s.authed = true
	s.bare = user
	s.scram = nil
	if additional != nil {
		s.writeNow([]byte(`<success xmlns="` + nsSASL + `">` + base64.StdEncoding.EncodeToString(additional) + `</success>`))
	} else {
		s.writeNow([]byte(`<success xmlns="` + nsSASL + `"/>`))
	}
	return errRestart
}

// scramFirst handles client-first-message (RFC 5802 section 7).
func (s *Session) scramFirst(hashName string, data []byte) error {
	msg := string(data)
	// gs2-header: cbind-flag "," [authzid] ","
	i := strings.IndexByte(msg, ',')
	if i < 0 {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "no GS2 header"})
	}
	switch msg[:i] {
	case "n", "y":
	default:
		// "p=": channel binding, which is not offered (no -PLUS mechanism).
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "channel binding is not supported"})
	}
	j := strings.IndexByte(msg[i+1:], ',')
	if j < 0 {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "no GS2 header"})
	}
	authzid := msg[i+1 : i+1+j]
	gs2 := msg[:i+1+j+1]
	bare := msg[i+1+j+1:]
	attrs := scramAttrs(bare)
	if attrs == nil || attrs['n'] == "" || attrs['r'] == "" || strings.HasPrefix(bare, "m=") {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "client-first-message needs n= and r="})
	}
	name, ok := saslname(attrs['n'])
	if !ok {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "bad escaping in the username"})
	}
	user, err := s.normalizeUser(name)
	if err != nil {
		return s.saslFail(&saslFailure{cond: "not-authorized", text: err.Error()})
	}
	if authzid != "" {
		az, ok := saslname(strings.TrimPrefix(authzid, "a="))
		aj, err := jid.Parse(az)
		if !ok || err != nil || aj.Bare() != user {
			return s.saslFail(&saslFailure{cond: "invalid-authzid", text: "you may only log in as yourself"})
		}
	}
	if wait := s.srv.throttle.blocked(user.Address(), s.remote); wait > 0 {
		return s.throttled(wait)
	}
	h, _ := account.HashFunc(hashName)
	st := &scramState{hashName: hashName, h: h, address: user.Address(), clientFirst: bare, gs2: gs2}
	prov := s.srv.cfg.Auth.(account.SCRAMProvider)
	creds, err := prov.SCRAMCredentials(s.ctx(), user.Address(), hashName)
	switch {
	case err == nil && creds.Iterations > 0 && len(creds.StoredKey) == h().Size():
		st.creds = creds
	case err == nil || errors.Is(err, account.ErrAuthFailed) || errors.Is(err, account.ErrNotFound):
		// Go on with made-up values so that the client cannot tell an
		// unknown user from a wrong password (RFC 5802 section 9).
		st.unknown = true
		st.creds = account.SCRAMCredentials{Salt: fakeSalt(s.srv, user.Address()), Iterations: 4096}
	default:
		s.srv.log.Error("SCRAM credentials lookup failed", "user", user.Address(), "err", err)
		return s.saslFail(&saslFailure{cond: "temporary-auth-failure", text: "the account service is unavailable; try again later"})
	}
	st.nonce = attrs['r'] + randomID(18)
	st.serverFirst = "r=" + st.nonce + ",s=" + base64.StdEncoding.EncodeToString(st.creds.Salt) + ",i=" + strconv.Itoa(st.creds.Iterations)
	s.scram = st
	s.writeNow([]byte(`<challenge xmlns="` + nsSASL + `">` + base64.StdEncoding.EncodeToString([]byte(st.serverFirst)) + `</challenge>`))
	return nil
}

// fakeSalt is a stable per-user salt for unknown users.
func fakeSalt(srv *Server, address string) []byte {
	return account.HMAC(account.MustHash("SHA-256"), srv.fakeKey, address)[:16]
}

// scramFinal checks client-final-message and answers server-final-message.
func (s *Session) scramFinal(el *Element) error {
	st := s.scram
	data, err := decodeB64(el)
	if err != nil {
		return s.saslFail(&saslFailure{cond: "incorrect-encoding", text: "the response is not base64"})
	}
	msg := string(data)
	k := strings.LastIndex(msg, ",p=")
	if k < 0 {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "client-final-message needs p="})
	}
	withoutProof := msg[:k]
	attrs := scramAttrs(withoutProof)
	if attrs == nil {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "bad client-final-message"})
	}
	if cb, _ := base64.StdEncoding.DecodeString(attrs['c']); string(cb) != st.gs2 {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "channel binding data does not match the GS2 header"})
	}
	if attrs['r'] != st.nonce {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "nonce mismatch"})
	}
	proof, err := base64.StdEncoding.DecodeString(msg[k+3:])
	if err != nil || len(proof) != st.h().Size() {
		return s.saslFail(&saslFailure{cond: "malformed-request", text: "bad proof"})
	}
	authMessage := st.clientFirst + "," + st.serverFirst + "," + withoutProof
	user := jid.MustParse(st.address)
	if st.unknown {
		return s.authFailed(user, account.ErrAuthFailed)
	}
	clientSig := account.HMAC(st.h, st.creds.StoredKey, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	hh := st.h()
	hh.Write(clientKey)
	if subtle.ConstantTimeCompare(hh.Sum(nil), st.creds.StoredKey) != 1 {
		return s.authFailed(user, account.ErrAuthFailed)
	}
	serverSig := account.HMAC(st.h, st.creds.ServerKey, authMessage)
	return s.authSucceeded(user, []byte("v="+base64.StdEncoding.EncodeToString(serverSig)))
}

// scramAttrs splits "a=x,b=y" into a map keyed by the attribute letter; nil
// when malformed.
func scramAttrs(s string) map[byte]string {
	out := make(map[byte]string)
	for _, part := range strings.Split(s, ",") {
		if len(part) < 2 || part[1] != '=' {
			return nil
		}
		out[part[0]] = part[2:]
	}
	return out
}

// saslname undoes RFC 5802's =2C and =3D escaping.
func saslname(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		switch s[i+1 : i+3] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}
