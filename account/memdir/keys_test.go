package memdir

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"testing"

	"golang.org/x/crypto/pbkdf2"

	"github.com/parleyhq/parley/account"
)

// scramClient is the client side of RFC 5802 section 3, written out here
// with x/crypto's PBKDF2 so that it does not share code with the server.
type scramClient struct {
	h                    func() hash.Hash
	clientKey, serverKey []byte
}

func newClient(h func() hash.Hash, password string, salt []byte, iter int) scramClient {
	salted := pbkdf2.Key([]byte(password), salt, iter, h().Size(), h)
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	return scramClient{h: h, clientKey: mac(salted, "Client Key"), serverKey: mac(salted, "Server Key")}
}

func (c scramClient) storedKey() []byte {
	s := c.h()
	s.Write(c.clientKey)
	return s.Sum(nil)
}

// proof is ClientProof := ClientKey XOR HMAC(StoredKey, AuthMessage).
func (c scramClient) proof(authMessage string) []byte {
	m := hmac.New(c.h, c.storedKey())
	m.Write([]byte(authMessage))
	sig := m.Sum(nil)
	p := make([]byte, len(sig))
	for i := range sig {
		p[i] = c.clientKey[i] ^ sig[i]
	}
	return p
}

func (c scramClient) serverSignature(authMessage string) []byte {
	m := hmac.New(c.h, c.serverKey)
	m.Write([]byte(authMessage))
	return m.Sum(nil)
}

// serverVerify is what a server does with stored credentials only: recover
// ClientKey from the proof and check that it hashes to StoredKey.
func serverVerify(h func() hash.Hash, cr account.SCRAMCredentials, authMessage string, proof []byte) (ok bool, serverSig []byte) {
	sig := account.HMAC(h, cr.StoredKey, authMessage)
	if len(proof) != len(sig) {
		return false, nil
	}
	ck := make([]byte, len(sig))
	for i := range sig {
		ck[i] = proof[i] ^ sig[i]
	}
	s := h()
	s.Write(ck)
	return hmac.Equal(s.Sum(nil), cr.StoredKey), account.HMAC(h, cr.ServerKey, authMessage)
}

func TestSCRAMCredentialsAgainstClient(t *testing.T) {
	ctx := context.Background()
	d := sample(t)
	const am = "n=alice,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef"
	var salts [][]byte
	for _, hc := range []struct {
		name string
		h    func() hash.Hash
	}{{"SHA-1", sha1.New}, {"SHA-256", sha256.New}} {
		cr, err := d.SCRAMCredentials(ctx, "Alice@example.com", hc.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(cr.Salt) != 16 || cr.Iterations != 4096 || len(cr.StoredKey) != hc.h().Size() || len(cr.ServerKey) != hc.h().Size() {
			t.Fatalf("%s: salt %d bytes, %d iterations, keys %d/%d bytes", hc.name, len(cr.Salt), cr.Iterations, len(cr.StoredKey), len(cr.ServerKey))
		}
		salts = append(salts, cr.Salt)

		c := newClient(hc.h, "alice-pw", cr.Salt, cr.Iterations)
		if !bytes.Equal(c.storedKey(), cr.StoredKey) || !bytes.Equal(c.serverKey, cr.ServerKey) {
			t.Errorf("%s: keys differ from the client's computation", hc.name)
		}
		ok, sig := serverVerify(hc.h, cr, am, c.proof(am))
		if !ok || !bytes.Equal(sig, c.serverSignature(am)) {
			t.Errorf("%s: the right password's proof was refused (ok=%v) or the server signature differs", hc.name, ok)
		}
		wrong := newClient(hc.h, "alice-PW", cr.Salt, cr.Iterations)
		if ok, _ := serverVerify(hc.h, cr, am, wrong.proof(am)); ok {
			t.Errorf("%s: a wrong password's proof was accepted", hc.name)
		}

		// The caller may scribble on what it got.
		cr.StoredKey[0] ^= 0xff
		again, _ := d.SCRAMCredentials(ctx, "alice@example.com", hc.name)
		if again.StoredKey[0] == cr.StoredKey[0] {
			t.Errorf("%s: SCRAMCredentials shares its buffers with the caller", hc.name)
		}
	}
	if !bytes.Equal(salts[0], salts[1]) {
		t.Error("SHA-1 and SHA-256 credentials use different salts")
	}
	bob, _ := d.SCRAMCredentials(ctx, "bob@example.com", "SHA-256")
	if bytes.Equal(bob.Salt, salts[0]) {
		t.Error("two users share a salt")
	}

	for _, c := range []struct {
		addr, hash string
		want       error
	}{
		{"nobody@example.com", "SHA-256", account.ErrAuthFailed},
		{"sales@example.com", "SHA-1", account.ErrAuthFailed},
		{"alice@example.com", "SHA-512", account.ErrNotFound},
		{"alice@example.com", "sha-256", account.ErrNotFound},
	} {
		if _, err := d.SCRAMCredentials(ctx, c.addr, c.hash); !errors.Is(err, c.want) {
			t.Errorf("SCRAMCredentials(%s, %s) = %v, want %v", c.addr, c.hash, err, c.want)
		}
	}
}

// The exchanges printed in RFC 5802 section 5 and RFC 7677 section 3.
func TestRFCExchanges(t *testing.T) {
	for _, v := range []struct {
		name, salt, authMessage, proof, serverSig string
		h                                         func() hash.Hash
	}{
		{
			"SHA-1", "QSXCR+Q6sek8bf92",
			"n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
			"v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ=", sha1.New,
		},
		{
			"SHA-256", "W22ZaJ0SNY7soEsUEjb6gQ==",
			"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			"dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", sha256.New,
		},
	} {
		salt, _ := base64.StdEncoding.DecodeString(v.salt)
		k, err := derive("pencil", salt, 4096)
		if err != nil {
			t.Fatal(err)
		}
		cr := k.sha256
		if v.name == "SHA-1" {
			cr = k.sha1
		}
		proof, _ := base64.StdEncoding.DecodeString(v.proof)
		ok, sig := serverVerify(v.h, cr, v.authMessage, proof)
		if !ok || base64.StdEncoding.EncodeToString(sig) != v.serverSig {
			t.Errorf("%s: RFC proof ok=%v, server signature %s, want %s", v.name, ok, base64.StdEncoding.EncodeToString(sig), v.serverSig)
		}
	}
}

func TestExportImport(t *testing.T) {
	ctx := context.Background()
	users := map[string]string{"a@example.com": "pa", "b@example.com": "pb", "c@example.com": "pc"}
	load := func() *Dir {
		d := New()
		for a, pw := range users {
			if err := d.AddUser(a, "", pw, true); err != nil {
				t.Fatal(err)
			}
		}
		d.AddAlias("all@example.com", "", "a@example.com")
		return d
	}
	d1 := load()
	if got := d1.ExportCredentials(); len(got) != 0 {
		t.Fatalf("export before any derivation has %d entries", len(got))
	}
	d1.Warm(ctx)
	exp := d1.ExportCredentials()
	if len(exp) != 3 || exp[0].Address != "a@example.com" || exp[2].Address != "c@example.com" {
		t.Fatalf("export = %+v", exp)
	}
	// A host keeps it as JSON.
	raw, err := json.Marshal(exp)
	if err != nil {
		t.Fatal(err)
	}
	var back []Credential
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}

	// Next run: same users, but b changed password in between.
	users["b@example.com"] = "pb2"
	d2 := load()
	back = append(back,
		Credential{Address: "nobody@example.com", Salt: exp[0].Salt, Iterations: 4096},
		Credential{Address: "all@example.com"},
	)
	if n := d2.ImportCredentials(back); n != 2 {
		t.Errorf("ImportCredentials accepted %d, want 2 (a and c)", n)
	}
	if n := d2.derivations.Load(); n != 0 {
		t.Errorf("import ran %d derivations", n)
	}
	for a, pw := range users {
		if err := d2.CheckPassword(ctx, a, pw); err != nil {
			t.Errorf("%s after import: %v", a, err)
		}
	}
	if err := d2.CheckPassword(ctx, "b@example.com", "pb"); !errors.Is(err, account.ErrAuthFailed) {
		t.Errorf("b's old password after import = %v", err)
	}
	if n := d2.derivations.Load(); n != 1 {
		t.Errorf("%d derivations after import and logins, want 1 (b)", n)
	}
	for _, h := range []string{"SHA-1", "SHA-256"} {
		c1, _ := d1.SCRAMCredentials(ctx, "a@example.com", h)
		c2, _ := d2.SCRAMCredentials(ctx, "a@example.com", h)
		if !bytes.Equal(c1.Salt, c2.Salt) || !bytes.Equal(c1.StoredKey, c2.StoredKey) || !bytes.Equal(c1.ServerKey, c2.ServerKey) {
			t.Errorf("%s credentials of a differ after import", h)
		}
	}

	// Importing over derived keys, or after SetPassword, changes nothing.
	if n := d2.ImportCredentials(back); n != 0 {
		t.Errorf("second import accepted %d", n)
	}
	d2.SetPassword("a@example.com", "pa2")
	if n := d2.ImportCredentials(back[:1]); n != 0 {
		t.Errorf("import after SetPassword accepted %d", n)
	}
	if err := d2.CheckPassword(ctx, "a@example.com", "pa2"); err != nil {
		t.Error(err)
	}

	// A tampered key size is refused.
	d3 := load()
	bad := back[0]
	bad.SHA256StoredKey = bad.SHA256StoredKey[:16]
	if n := d3.ImportCredentials([]Credential{bad}); n != 0 {
		t.Errorf("import of a short key accepted")
	}
}

// BenchmarkDerive is the cost of one user's first use: PBKDF2 for SHA-1
// and SHA-256, 4096 iterations each.
func BenchmarkDerive(b *testing.B) {
	salt := make([]byte, saltLen)
	for b.Loop() {
		derive("correct horse battery staple", salt, Iterations)
	}
}

// BenchmarkAddUser is what loading a host's users costs per user; no
// PBKDF2 runs here.
func BenchmarkAddUser(b *testing.B) {
	d := New()
	i := 0
	for b.Loop() {
		d.AddUser(fmt.Sprintf("user%d@example.com", i), "Some Name", "password", true)
		i++
	}
}

func BenchmarkImportCredentials(b *testing.B) {
	d := New()
	for i := range 1000 {
		d.AddUser(fmt.Sprintf("user%d@example.com", i), "", "password", true)
	}
	d.Warm(context.Background())
	exp := d.ExportCredentials()
	for b.Loop() {
		fresh := New()
		for i := range 1000 {
			fresh.AddUser(fmt.Sprintf("user%d@example.com", i), "", "password", true)
		}
		fresh.ImportCredentials(exp)
	}
}
