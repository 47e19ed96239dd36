package account

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash"
)

// HashFunc returns the hash constructor for a SCRAM hash name ("SHA-1" or
// "SHA-256").
func HashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case "SHA-1":
		return sha1.New, nil
	case "SHA-256":
		return sha256.New, nil
	}
	return nil, fmt.Errorf("account: unknown SCRAM hash %q", name)
}

// MustHash is HashFunc for names known to be valid; it panics otherwise.
func MustHash(name string) func() hash.Hash {
	h, err := HashFunc(name)
	if err != nil {
		panic(err)
	}
	return h
}

// DeriveSCRAM computes the SCRAM credentials (RFC 5802 section 3) of a
// password, for hosts that store passwords in a form they can derive from
// or that precompute credentials when a password is set. iterations below
// 4096 are raised to 4096, the minimum RFC 7677 allows.
func DeriveSCRAM(hashName, password string, salt []byte, iterations int) (SCRAMCredentials, error) {
	h, err := HashFunc(hashName)
	if err != nil {
		return SCRAMCredentials{}, err
	}
	if iterations < 4096 {
		iterations = 4096
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return SCRAMCredentials{}, fmt.Errorf("account: %w", err)
	}
	clientKey := HMAC(h, salted, "Client Key")
	sk := h()
	sk.Write(clientKey)
	return SCRAMCredentials{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  sk.Sum(nil),
		ServerKey:  HMAC(h, salted, "Server Key"),
	}, nil
}

// HMAC is HMAC(key, msg) with the given hash.
func HMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
