package media

import (
	"sync"
	"time"
)

// Source says what a published track carries. Each participant publishes at
// most one track per source; a new track for a source replaces the old one.
type Source string

const (
	// SourceMic is the microphone, the participant's one audio track.
	SourceMic Source = "mic"
	// SourceCamera is the camera video.
	SourceCamera Source = "camera"
	// SourceScreen is screen sharing: a second video track, preferred over
	// cameras when a subscriber's bandwidth is short.
	SourceScreen Source = "screen"
)

func (s Source) valid() bool { return s == SourceMic || s == SourceCamera || s == SourceScreen }

// EventType names what happened in a room.
type EventType string

const (
	// EventJoined: Participant (Name, Role) joined.
	EventJoined EventType = "participantJoined"
	// EventLeft: Participant left; Reason says why ("leave", "closed",
	// "timeout", "removed", "replaced", "shutdown").
	EventLeft EventType = "participantLeft"
	// EventTrackPublished / EventTrackUnpublished: Participant started or
	// stopped sending Source.
	EventTrackPublished   EventType = "trackPublished"
	EventTrackUnpublished EventType = "trackUnpublished"
	// EventMute: Participant's Source is now Muted. By is the moderator's
	// id when a moderator did it; Blocked is true while a moderator keeps
	// it muted (the participant cannot unmute themselves).
	EventMute EventType = "mute"
	// EventActiveSpeaker: Participant is now the loudest speaker; empty
	// when nobody speaks.
	EventActiveSpeaker EventType = "activeSpeaker"
	// EventRecording: the room's recording is now Recording (on or off);
	// By is the moderator who switched it, empty when it stopped by itself.
	EventRecording EventType = "recording"
	// EventRole: a participant's role changed (SFU.SetRole).
	EventRole EventType = "role"
)

// Event is something that happened in a room. The same value is delivered
// to Config.OnEvent and, as JSON, to every participant of the room (see
// SIGNALLING.md; false and empty fields are left out).
type Event struct {
	Type        EventType `json:"event"`
	Room        string    `json:"room"`
	Participant string    `json:"participant,omitempty"`
	Name        string    `json:"name,omitempty"`
	Role        *Role     `json:"role,omitempty"`
	Source      Source    `json:"source,omitempty"`
	Muted       bool      `json:"muted,omitempty"`
	Blocked     bool      `json:"blocked,omitempty"`
	By          string    `json:"by,omitempty"`
	Recording   bool      `json:"recording,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
}

// dispatcher hands events to Config.OnEvent on one goroutine, in order,
// without ever making the media or signalling goroutines wait for the host.
// Events are rare (joins, mutes, speaker changes), so the queue is a plain
// slice rather than a bounded channel that could lose a "left".
type dispatcher struct {
	fn   func(Event)
	mu   sync.Mutex
	cond *sync.Cond
	q    []Event
	done bool
	wg   sync.WaitGroup
}

func newDispatcher(fn func(Event)) *dispatcher {
	d := &dispatcher{fn: fn}
	d.cond = sync.NewCond(&d.mu)
	if fn != nil {
		d.wg.Add(1)
		go d.run()
	}
	return d
}

func (d *dispatcher) emit(e Event) {
	if d.fn == nil {
		return
	}
	d.mu.Lock()
	if !d.done {
		d.q = append(d.q, e)
		d.cond.Signal()
	}
	d.mu.Unlock()
}

func (d *dispatcher) run() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		for len(d.q) == 0 && !d.done {
			d.cond.Wait()
		}
		q := d.q
		d.q = nil
		done := d.done
		d.mu.Unlock()
		for _, e := range q {
			d.fn(e)
		}
		if done && len(q) == 0 {
			return
		}
	}
}

// close delivers what is queued, then stops.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.done = true
	d.cond.Signal()
	d.mu.Unlock()
	d.wg.Wait()
}
