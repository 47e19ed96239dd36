package media

import (
	"context"
	"fmt"
)

// Role is what a participant may do in a room beyond sending and receiving
// media.
type Role uint8

const (
	// Participant publishes and subscribes.
	Participant Role = iota
	// Moderator may also mute, stop the video of and remove others, and
	// start or stop recording when the room's Limits allow it.
	Moderator
)

func (r Role) String() string {
	if r == Moderator {
		return "moderator"
	}
	return "participant"
}

// MarshalText encodes the role as "moderator" or "participant".
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes "moderator" or "participant".
func (r *Role) UnmarshalText(b []byte) error {
	switch string(b) {
	case "moderator":
		*r = Moderator
	case "participant", "":
		*r = Participant
	default:
		return fmt.Errorf("media: unknown role %q", b)
	}
	return nil
}

// Limits bound a room. A zero field means the SFU's Config.Limits value for
// that field, and a zero there means the documented default.
type Limits struct {
	// MaxParticipants is how many may be joined at once. Default 100.
	MaxParticipants int `json:"maxParticipants,omitempty"`
	// MaxPublishers is how many participants may send media at once.
	// Default 100.
	MaxPublishers int `json:"maxPublishers,omitempty"`
	// MaxBitrate caps the sum of all publishers' bitrates, in bits per
	// second. It is enforced by asking each publisher (REMB) to keep under
	// an equal share. Default 200 Mbit/s.
	MaxBitrate int `json:"maxBitrate,omitempty"`
	// Recording allows a moderator to record the room. Recording also
	// needs Config.Recording.
	Recording bool `json:"recording,omitempty"`
}

func (l Limits) withDefaults(d Limits) Limits {
	if l.MaxParticipants <= 0 {
		l.MaxParticipants = d.MaxParticipants
	}
	if l.MaxPublishers <= 0 {
		l.MaxPublishers = d.MaxPublishers
	}
	if l.MaxBitrate <= 0 {
		l.MaxBitrate = d.MaxBitrate
	}
	return l
}

// Grant is what an Authorizer concludes from a join credential.
type Grant struct {
	// Room and Participant identify the room to join and who joins it.
	// A second join with the same Room and Participant replaces the first
	// (a reload or a reconnect).
	Room        string
	Participant string
	// Name is shown to the others.
	Name string
	Role Role
	// Limits of the room. Every join updates the room's limits to those of
	// its grant, so the authority (package meeting) can change them between
	// joins; a lowered limit never removes anyone already in.
	Limits Limits
}

// An Authorizer turns the credential a client presents in its join message
// into a Grant. It is the only way into a room; errors are reported to the
// client as "unauthorized" without their text, so they may carry detail for
// logs.
//
// Authorize is called concurrently from the goroutines serving WebSockets.
type Authorizer interface {
	Authorize(ctx context.Context, credential string) (Grant, error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, credential string) (Grant, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, credential string) (Grant, error) {
	return f(ctx, credential)
}
