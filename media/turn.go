package media

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"time"
)

// ICEServer is a STUN or TURN server handed to clients in the joined
// message. The SFU itself does not use them: it is reached on its own host
// (or Config.PublicIPs) candidates.
type ICEServer struct {
	// URLs such as "stun:stun.example.com:3478" or
	// "turns:turn.example.com:443?transport=tcp".
	URLs []string
	// Username and Credential are handed out unchanged when Secret is empty.
	Username   string
	Credential string
	// Secret is a TURN REST API shared secret (coturn's static-auth-secret,
	// use-auth-secret). When set, every participant gets its own
	// credentials that expire after Config.TURNCredentialTTL; see
	// TURNCredentials.
	Secret string
}

// iceServerJSON is the browser's RTCIceServer dictionary.
type iceServerJSON struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// TURNCredentials returns time-limited TURN credentials in the TURN REST API
// scheme (draft-uberti-behave-turn-rest, as implemented by coturn):
// username is "<expiry unix seconds>:<user>" and password is
// base64(HMAC-SHA1(secret, username)). The TURN server needs only the
// secret to check them.
func TURNCredentials(secret, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func iceServersFor(servers []ICEServer, user string, now time.Time, ttl time.Duration) []iceServerJSON {
	out := make([]iceServerJSON, 0, len(servers))
	for _, s := range servers {
		j := iceServerJSON{URLs: s.URLs, Username: s.Username, Credential: s.Credential}
		if s.Secret != "" {
			j.Username, j.Credential = TURNCredentials(s.Secret, user, now.Add(ttl))
		}
		out = append(out, j)
	}
	return out
}
