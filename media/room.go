package media

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// room is the set of participants that see and hear each other. It exists
// while someone is in it.
type room struct {
	sfu *SFU
	id  string

	mu         sync.Mutex
	limits     Limits
	parts      map[string]*participant
	tracks     map[*upTrack]struct{}
	publishers map[*participant]struct{}
	rec        *recording
	recBy      string
	speakerID  string

	det       speakerDetector // room goroutine only
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newRoom(s *SFU, id string) *room {
	r := &room{
		sfu:        s,
		id:         id,
		parts:      map[string]*participant{},
		tracks:     map[*upTrack]struct{}{},
		publishers: map[*participant]struct{}{},
		done:       make(chan struct{}),
	}
	r.wg.Add(1)
	go r.loop()
	return r
}

// emit sends an event to the host and to everyone in the room.
func (r *room) emit(e Event) {
	e.Room = r.id
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	r.sfu.events.emit(e)
	for _, p := range r.members() {
		p.send(eventMsg{Type: msgEvent, Event: e})
	}
}

func (r *room) members() []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps := make([]*participant, 0, len(r.parts))
	for _, p := range r.parts {
		ps = append(ps, p)
	}
	return ps
}

func (r *room) get(id string) *participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parts[id]
}

func (r *room) speaker() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.speakerID
}

// infoLocked describes the participants, in order of joining.
func (r *room) infoLocked() []ParticipantInfo {
	ps := make([]*participant, 0, len(r.parts))
	for _, p := range r.parts {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].joinedAt.Before(ps[j].joinedAt) })
	out := make([]ParticipantInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.info())
	}
	return out
}

func (p *participant) info() ParticipantInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := ParticipantInfo{ID: p.id, Name: p.name, Role: p.role, Tracks: []Source{}, Muted: []Source{}}
	for _, s := range []Source{SourceMic, SourceCamera, SourceScreen} {
		if p.ups[s] != nil {
			i.Tracks = append(i.Tracks, s)
		}
		if p.muted[s] || p.blockedLocked(s) {
			i.Muted = append(i.Muted, s)
		}
	}
	return i
}

// leave removes p (unless a newer session with its id replaced it) and
// reports whether the room is now empty. Called with sfu.mu held.
func (r *room) leaveLocked(p *participant) (removed, empty bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parts[p.id] == p {
		delete(r.parts, p.id)
		removed = true
	}
	delete(r.publishers, p)
	return removed, len(r.parts) == 0
}

func (r *room) leave(p *participant, reason string) {
	s := r.sfu
	s.mu.Lock()
	removed, empty := r.leaveLocked(p)
	// The room ends once: whoever takes it off the SFU's list closes it
	// (a replaced session and its successor may both find it empty).
	last := empty && s.rooms[r.id] == r
	if last {
		delete(s.rooms, r.id)
	}
	s.mu.Unlock()
	r.mu.Lock()
	rec := r.rec
	r.mu.Unlock()
	if rec != nil {
		rec.closeParticipant(p)
	}
	if removed {
		r.emit(Event{Type: EventLeft, Participant: p.id, Name: p.name, Reason: reason})
	}
	if last {
		r.close()
	}
}

// close stops the room's goroutine and its recording.
func (r *room) close() {
	r.mu.Lock()
	rec := r.rec
	r.rec = nil
	r.mu.Unlock()
	if rec != nil {
		rec.stop()
		r.sfu.events.emit(Event{Type: EventRecording, Room: r.id, Recording: false, Time: time.Now()})
	}
	r.closeOnce.Do(func() { close(r.done) })
	r.wg.Wait()
}

// admitPublisher reserves a publisher slot for p's first track.
func (r *room) admitPublisher(p *participant) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.publishers[p]; ok {
		return nil
	}
	if len(r.publishers) >= r.limits.MaxPublishers {
		return fmt.Errorf("%w: %d publishers", ErrPublisherLimit, r.limits.MaxPublishers)
	}
	r.publishers[p] = struct{}{}
	return nil
}

// publish makes up available to everyone else in the room.
func (r *room) publish(up *upTrack) {
	r.mu.Lock()
	if up.closed.Load() {
		r.mu.Unlock()
		return
	}
	r.tracks[up] = struct{}{}
	ps := make([]*participant, 0, len(r.parts))
	for _, p := range r.parts {
		ps = append(ps, p)
	}
	rec := r.rec
	r.mu.Unlock()
	for _, p := range ps {
		p.subscribe(up)
	}
	if rec != nil {
		rec.attach(up)
	}
	up.owner.mu.Lock()
	muted := up.owner.muted[up.source] || up.owner.blockedLocked(up.source)
	up.owner.mu.Unlock()
	r.emit(Event{Type: EventTrackPublished, Participant: up.owner.id, Source: up.source, Muted: muted})
}

func (r *room) unpublish(up *upTrack) {
	r.mu.Lock()
	_, had := r.tracks[up]
	delete(r.tracks, up)
	owns := false
	for t := range r.tracks {
		if t.owner == up.owner {
			owns = true
		}
	}
	if !owns {
		delete(r.publishers, up.owner)
	}
	ps := make([]*participant, 0, len(r.parts))
	for _, p := range r.parts {
		ps = append(ps, p)
	}
	rec := r.rec
	r.mu.Unlock()
	for _, p := range ps {
		p.unsubscribe(up)
	}
	if rec != nil {
		rec.detach(up)
	}
	if had {
		r.emit(Event{Type: EventTrackUnpublished, Participant: up.owner.id, Source: up.source})
	}
}

func (r *room) reallocate() {
	for _, p := range r.members() {
		p.allocate()
	}
}

func (r *room) setRecording(on bool, by string) error {
	r.mu.Lock()
	if on && !r.limits.Recording {
		r.mu.Unlock()
		return fmt.Errorf("%w: not allowed in this room", ErrRecordingUnavailable)
	}
	if on && r.sfu.cfg.Recording == nil {
		r.mu.Unlock()
		return fmt.Errorf("%w: no recording sink", ErrRecordingUnavailable)
	}
	if on == (r.rec != nil) {
		r.mu.Unlock()
		return nil
	}
	var tracks []*upTrack
	var rec *recording
	if on {
		rec = newRecording(r)
		r.rec = rec
		r.recBy = by
		for t := range r.tracks {
			tracks = append(tracks, t)
		}
	} else {
		rec = r.rec
		r.rec = nil
	}
	r.mu.Unlock()
	if on {
		for _, t := range tracks {
			rec.attach(t)
		}
	} else {
		rec.stop()
	}
	r.emit(Event{Type: EventRecording, Recording: on, By: by})
	return nil
}

func (r *room) recording() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec != nil
}

// loop is the room's housekeeping: active speaker every tick; layer
// allocation twice a second; bitrates, the room's bitrate cap and the
// recording's layers every second.
func (r *room) loop() {
	defer r.wg.Done()
	t := time.NewTicker(speakerTick)
	defer t.Stop()
	last := time.Now()
	for n := 1; ; n++ {
		select {
		case <-r.done:
			return
		case now := <-t.C:
			r.speakerTick(now)
			r.flushKeyframeRequests()
			if n%4 == 0 {
				r.sampleBitrates(now.Sub(last))
				last = now
				r.enforceBitrate()
				r.mu.Lock()
				rec := r.rec
				r.mu.Unlock()
				if rec != nil {
					rec.refresh()
				}
			}
			if n%2 == 0 {
				r.reallocate()
			}
		}
	}
}

func (r *room) speakerTick(now time.Time) {
	loud := map[string]float64{}
	r.mu.Lock()
	for up := range r.tracks {
		if up.kind != webrtc.RTPCodecTypeAudio {
			continue
		}
		sum, n := up.levelSum.Swap(0), up.levelCount.Swap(0)
		if n > 0 {
			loud[up.owner.id] = float64(sum) / float64(n)
		}
	}
	present := map[string]bool{}
	for id := range r.parts {
		present[id] = true
	}
	r.mu.Unlock()
	changed := false
	if cur := r.det.current; cur != "" && !present[cur] {
		changed = r.det.forget(cur)
	}
	id, ch := r.det.update(now, loud)
	if !ch && !changed {
		return
	}
	r.mu.Lock()
	r.speakerID = id
	r.mu.Unlock()
	r.emit(Event{Type: EventActiveSpeaker, Participant: id})
}

// flushKeyframeRequests sends the keyframe requests the rate limit held
// back.
func (r *room) flushKeyframeRequests() {
	r.mu.Lock()
	ups := make([]*upTrack, 0, len(r.tracks))
	for up := range r.tracks {
		ups = append(ups, up)
	}
	r.mu.Unlock()
	for _, up := range ups {
		for _, l := range up.layerList() {
			if l.keyPending.Load() {
				l.requestKeyframe()
			}
		}
	}
}

func (r *room) sampleBitrates(d time.Duration) {
	if d <= 0 {
		return
	}
	r.mu.Lock()
	ups := make([]*upTrack, 0, len(r.tracks))
	for up := range r.tracks {
		ups = append(ups, up)
	}
	r.mu.Unlock()
	for _, up := range ups {
		for _, l := range up.layerList() {
			l.sampleBitrate(d)
		}
	}
}

// enforceBitrate asks each video publisher (REMB) to stay within an equal
// share of the room's bitrate cap; browsers take the lower of this and
// their own estimate.
func (r *room) enforceBitrate() {
	r.mu.Lock()
	limit := r.limits.MaxBitrate
	byOwner := map[*participant][]uint32{}
	for up := range r.tracks {
		if up.kind != webrtc.RTPCodecTypeVideo {
			continue
		}
		for _, l := range up.layerList() {
			byOwner[up.owner] = append(byOwner[up.owner], l.ssrc)
		}
	}
	r.mu.Unlock()
	if limit <= 0 || len(byOwner) == 0 {
		return
	}
	share := float32(limit / len(byOwner))
	for p, ssrcs := range byOwner {
		p.writeRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: share, SSRCs: ssrcs}})
	}
}
