package media

import (
	"github.com/pion/webrtc/v4"
)

// Signalling messages, JSON over the WebSocket; SIGNALLING.md is the
// reference. Every message is an object with a "type".

// PeerConnection names in "pc": the client offers on "pub" (what it
// sends), the SFU offers on "sub" (what it receives). Each side only ever
// offers on its own connection, so offers never cross (no glare).
const (
	pcPub = "pub"
	pcSub = "sub"
)

// clientMsg is any message a client sends.
type clientMsg struct {
	Type string `json:"type"`

	// join
	Credential string `json:"credential,omitempty"`

	// offer, answer, candidate
	PC        string                   `json:"pc,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	// offer: which of the offered tracks (by MediaStreamTrack id, the
	// msid track id) carries what.
	Sources map[string]Source `json:"sources,omitempty"`

	// mute
	Source Source `json:"source,omitempty"`
	Muted  bool   `json:"muted,omitempty"`

	// layer
	Track    string `json:"track,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
	MaxLayer *int   `json:"maxLayer,omitempty"`
	Paused   bool   `json:"paused,omitempty"`

	// moderate
	Action      string `json:"action,omitempty"`
	Participant string `json:"participant,omitempty"`

	// record
	On bool `json:"on,omitempty"`
}

// Client message types.
const (
	msgJoin      = "join"
	msgOffer     = "offer"
	msgAnswer    = "answer"
	msgCandidate = "candidate"
	msgMute      = "mute"
	msgLayer     = "layer"
	msgModerate  = "moderate"
	msgRecord    = "record"
	msgLeave     = "leave"
	// iceRestart asks for a new subscriber offer with new ICE credentials
	// (the client's network changed); the client restarts "pub" itself
	// with an offer of new credentials.
	msgICERestart = "iceRestart"
)

// Server message types (besides offer, answer and candidate).
const (
	msgJoined  = "joined"
	msgEvent   = "event"
	msgError   = "error"
	msgRemoved = "removed"
)

// Moderator actions.
const (
	actionMute       = "mute"
	actionUnmute     = "unmute"
	actionStopVideo  = "stopVideo"
	actionAllowVideo = "allowVideo"
	actionRemove     = "remove"
)

// Error codes.
const (
	codeBadRequest    = "bad-request"
	codeUnauthorized  = "unauthorized"
	codeRoomFull      = "room-full"
	codePublisherFull = "publisher-limit"
	codeForbidden     = "forbidden"
	codeNotFound      = "not-found"
	codeRecording     = "recording-unavailable"
	codeInternal      = "internal"
)

type joinedMsg struct {
	Type         string            `json:"type"`
	Room         string            `json:"room"`
	Participant  string            `json:"participant"`
	Name         string            `json:"name"`
	Role         Role              `json:"role"`
	ICEServers   []iceServerJSON   `json:"iceServers"`
	Participants []ParticipantInfo `json:"participants"`
	Recording    bool              `json:"recording"`
	Speaker      string            `json:"speaker,omitempty"`
	Limits       Limits            `json:"limits"`
}

type sdpMsg struct {
	Type   string      `json:"type"`
	PC     string      `json:"pc"`
	SDP    string      `json:"sdp"`
	Tracks []TrackInfo `json:"tracks,omitempty"`
}

type candidateMsg struct {
	Type      string                  `json:"type"`
	PC        string                  `json:"pc"`
	Candidate webrtc.ICECandidateInit `json:"candidate"`
}

type eventMsg struct {
	Type string `json:"type"`
	Event
}

type errorMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	// Request echoes the type of the message that failed.
	Request string `json:"request,omitempty"`
}

type removedMsg struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	By     string `json:"by,omitempty"`
}

// TrackInfo describes a track in a subscriber offer: which m-line (mid)
// carries whose what.
type TrackInfo struct {
	Mid         string `json:"mid"`
	Track       string `json:"track"` // "<participant>/<source>", used in layer messages
	Participant string `json:"participant"`
	Source      Source `json:"source"`
	Kind        string `json:"kind"`
	StreamID    string `json:"streamId"`
	TrackID     string `json:"trackId"`
	Layers      int    `json:"layers"`
	Codec       string `json:"codec"`
}

// ParticipantInfo describes a participant of a room.
type ParticipantInfo struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Role   Role     `json:"role"`
	Tracks []Source `json:"tracks"`
	// Muted lists sources the participant muted or a moderator blocked.
	Muted []Source `json:"muted"`
}
