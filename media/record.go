package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// RecordingSink stores recordings. The SFU records each participant as a
// WebM file with their mic (Opus) and camera (VP8 or VP9), and their screen
// share as a second file; it never decodes or mixes.
type RecordingSink interface {
	// Create opens the destination of one file. The SFU writes WebM to it
	// from its own goroutine and closes it when the recording stops, the
	// participant leaves, or the SFU closes. Create is called concurrently
	// for different files and should not block for long.
	Create(ctx context.Context, info RecordingInfo) (io.WriteCloser, error)
}

// RecordingInfo describes one recorded file.
type RecordingInfo struct {
	Room        string
	Participant string
	Name        string
	// Source is SourceCamera for the file with mic and camera, SourceScreen
	// for the screen share.
	Source  Source
	Started time.Time
}

// DirSink is a RecordingSink writing files named
// <dir>/<room>/<start>-<participant>-<source>.webm.
type DirSink string

// Create implements RecordingSink.
func (d DirSink) Create(_ context.Context, info RecordingInfo) (io.WriteCloser, error) {
	dir := filepath.Join(string(d), safeName(info.Room))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%s-%s.webm", info.Started.UTC().Format("20060102T150405Z"), safeName(info.Participant), info.Source)
	return os.Create(filepath.Join(dir, name))
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '@':
			return r
		}
		return '_'
	}, s)
}

// recording is a room's recording in progress: one recFile per
// participant and file kind.
type recording struct {
	room  *room
	mu    sync.Mutex
	files map[string]*recFile
	done  bool
}

func newRecording(r *room) *recording { return &recording{room: r, files: map[string]*recFile{}} }

func fileKey(p *participant, s Source) (string, Source) {
	if s == SourceScreen {
		return p.id + "/screen", SourceScreen
	}
	return p.id + "/av", SourceCamera
}

// attach starts recording up, opening its participant's file if needed.
func (rec *recording) attach(up *upTrack) {
	key, fsrc := fileKey(up.owner, up.source)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.done || up.closed.Load() {
		return
	}
	f := rec.files[key]
	if f == nil {
		var err error
		f, err = rec.open(up.owner, fsrc, up)
		if err != nil {
			rec.room.sfu.cfg.Logger.Error("media: recording", "room", rec.room.id, "participant", up.owner.id, "err", err)
			return
		}
		rec.files[key] = f
	}
	f.attach(up)
}

func (rec *recording) detach(up *upTrack) {
	key, _ := fileKey(up.owner, up.source)
	rec.mu.Lock()
	f := rec.files[key]
	rec.mu.Unlock()
	if f != nil {
		f.detach(up)
	}
}

// closeParticipant finishes the files of a participant who left.
func (rec *recording) closeParticipant(p *participant) {
	rec.mu.Lock()
	var fs []*recFile
	for _, s := range []Source{SourceCamera, SourceScreen} {
		key, _ := fileKey(p, s)
		if f := rec.files[key]; f != nil {
			fs = append(fs, f)
			delete(rec.files, key)
		}
	}
	rec.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
}

func (rec *recording) stop() {
	rec.mu.Lock()
	rec.done = true
	fs := rec.files
	rec.files = map[string]*recFile{}
	rec.mu.Unlock()
	for _, f := range fs {
		f.close()
	}
}

// refresh keeps every recorded video on its best layer.
func (rec *recording) refresh() {
	rec.mu.Lock()
	fs := make([]*recFile, 0, len(rec.files))
	for _, f := range rec.files {
		fs = append(fs, f)
	}
	rec.mu.Unlock()
	for _, f := range fs {
		f.mu.Lock()
		for _, t := range f.tracks {
			if t.dt != nil {
				t.dt.target.Store(int32(topLayer(t.dt.up)))
				if t.dt.cur.Load() != t.dt.target.Load() {
					t.dt.requestKeyframe()
				}
			}
		}
		f.mu.Unlock()
	}
}

func topLayer(up *upTrack) int {
	top := -1
	for _, l := range up.layerList() {
		top = max(top, int(l.index))
	}
	return top
}

// recFile is one WebM file. Its packets arrive through its own downPeer,
// so a slow disk only ever costs this file packets.
type recFile struct {
	info   RecordingInfo
	peer   *downPeer
	out    *errWriter
	tracks map[webrtc.RTPCodecType]*recTrack
	mu     sync.Mutex
	closed bool
}

type recTrack struct {
	f     *recFile
	w     webm.BlockWriteCloser
	codec codecKind
	dt    *downTrack
	// lastMs keeps block times increasing across re-attachments.
	lastMs int64
}

func (rec *recording) open(p *participant, src Source, up *upTrack) (*recFile, error) {
	sink := rec.room.sfu.cfg.Recording
	info := RecordingInfo{Room: rec.room.id, Participant: p.id, Name: p.name, Source: src, Started: time.Now()}
	w, err := sink.Create(rec.room.sfu.ctx, info)
	if err != nil {
		return nil, err
	}
	f := &recFile{info: info, out: &errWriter{w: w}, tracks: map[webrtc.RTPCodecType]*recTrack{}}
	var entries []webm.TrackEntry
	var kinds []webrtc.RTPCodecType
	var ckinds []codecKind
	if src == SourceCamera {
		entries = append(entries, webm.TrackEntry{
			Name: "mic", TrackNumber: 1, TrackUID: 1, CodecID: "A_OPUS", TrackType: 2,
			CodecPrivate: opusHead(), CodecDelay: 6500000, SeekPreRoll: 80000000,
			Audio: &webm.Audio{SamplingFrequency: 48000, Channels: 2},
		})
		kinds = append(kinds, webrtc.RTPCodecTypeAudio)
		ckinds = append(ckinds, codecOpus)
	}
	vcodec, vid := codecVP8, "V_VP8"
	if up.kind == webrtc.RTPCodecTypeVideo && up.ck == codecVP9 {
		vcodec, vid = codecVP9, "V_VP9"
	}
	w0, h0 := 1280, 720
	if up.kind == webrtc.RTPCodecTypeVideo {
		if l := up.layer(int8(topLayer(up))); l != nil && l.width.Load() > 0 {
			w0, h0 = int(l.width.Load()), int(l.height.Load())
		}
	}
	entries = append(entries, webm.TrackEntry{
		Name: string(src), TrackNumber: uint64(len(entries) + 1), TrackUID: uint64(len(entries) + 1), CodecID: vid, TrackType: 1,
		Video: &webm.Video{PixelWidth: uint64(w0), PixelHeight: uint64(h0)},
	})
	kinds = append(kinds, webrtc.RTPCodecTypeVideo)
	ckinds = append(ckinds, vcodec)

	log := rec.room.sfu.cfg.Logger
	ws, err := webm.NewSimpleBlockWriter(f.out, entries,
		mkvcore.WithOnFatalHandler(func(err error) { log.Error("media: recording", "err", err) }),
		mkvcore.WithOnErrorHandler(func(error) {}),
	)
	if err != nil {
		w.Close()
		return nil, err
	}
	for i, bw := range ws {
		f.tracks[kinds[i]] = &recTrack{f: f, w: bw, codec: ckinds[i]}
	}
	f.peer = newDownPeer(rec.room.sfu.cfg.SubscriberQueue)
	f.peer.ready.Store(true)
	return f, nil
}

func (f *recFile) attach(up *upTrack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tracks[up.kind]
	if f.closed || t == nil || (t.dt != nil && t.dt.up == up) {
		return
	}
	if up.ck != t.codec {
		return // H.264 has no place in WebM; a codec change mid-file neither
	}
	if t.dt != nil {
		t.dt.up.removeDown(t.dt)
	}
	dt := newDownTrack(up, f.peer, nil)
	dt.out = newRecSink(t, up)
	dt.ssrc = 1
	dt.pt = uint8(up.codec.PayloadType)
	dt.target.Store(int32(topLayer(up)))
	dt.bound.Store(true)
	t.dt = dt
	up.addDown(dt)
	dt.requestKeyframe()
}

func (f *recFile) detach(up *upTrack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tracks {
		if t.dt != nil && t.dt.up == up {
			up.removeDown(t.dt)
			t.dt = nil
		}
	}
}

// close detaches, stops the writer and finishes the file.
func (f *recFile) close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for _, t := range f.tracks {
		if t.dt != nil {
			t.dt.up.removeDown(t.dt)
			t.dt = nil
		}
	}
	f.mu.Unlock()
	f.peer.close()
	for _, t := range f.tracks {
		t.w.Close()
	}
}

// recSink turns one attachment's RTP into WebM blocks. It runs on the
// file's writer goroutine.
type recSink struct {
	t       *recTrack
	clock   uint32
	sb      *samplebuilder.SampleBuilder
	based   bool
	lastTs  uint32
	ext     int64 // RTP ticks since the first packet
	baseMs  int64
	gotKey  bool
	started time.Time
}

func newRecSink(t *recTrack, up *upTrack) *recSink {
	s := &recSink{t: t, clock: up.codec.ClockRate, started: t.f.info.Started}
	if s.clock == 0 {
		s.clock = 90000
	}
	switch t.codec {
	case codecVP8:
		s.sb = samplebuilder.New(128, &codecs.VP8Packet{}, s.clock)
	case codecVP9:
		s.sb = samplebuilder.New(128, &codecs.VP9Packet{}, s.clock)
	}
	return s
}

// ms maps an RTP timestamp to milliseconds since the file started. The
// timestamp is unwrapped against the previous one, so hours-long files
// (a 90 kHz clock wraps a 32-bit signed difference in 6.6 h) stay right.
func (s *recSink) ms(ts uint32) int64 {
	if !s.based {
		s.based, s.lastTs, s.baseMs = true, ts, time.Since(s.started).Milliseconds()
	}
	s.ext += int64(int32(ts - s.lastTs))
	s.lastTs = ts
	return s.baseMs + s.ext*1000/int64(s.clock)
}

// WriteRTP implements rtpWriter.
func (s *recSink) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if s.t.f.out.failed() {
		return len(payload), nil
	}
	if s.sb == nil {
		s.t.block(true, s.ms(h.Timestamp), payload)
		return len(payload), nil
	}
	p := &rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)}
	p.Header.Extensions = nil
	s.sb.Push(p)
	for smp := s.sb.Pop(); smp != nil; smp = s.sb.Pop() {
		key := videoKeyframe(s.t.codec, smp.Data)
		if !s.gotKey && !key {
			continue
		}
		s.gotKey = true
		s.t.block(key, s.ms(smp.PacketTimestamp), smp.Data)
	}
	return len(payload), nil
}

func (t *recTrack) block(key bool, ms int64, b []byte) {
	if ms < t.lastMs {
		ms = t.lastMs
	}
	t.lastMs = ms
	// The muxer keeps b until it writes it out.
	_, _ = t.w.Write(key, ms, append([]byte(nil), b...))
}

// videoKeyframe reads the keyframe flag of an assembled frame.
func videoKeyframe(k codecKind, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch k {
	case codecVP8:
		return b[0]&0x01 == 0
	case codecVP9:
		// frame_marker(2) profile_low(1) profile_high(1) [reserved(1) if
		// profile 3] show_existing_frame(1) frame_type(1)
		shift := 2
		if b[0]>>4&0x3 == 0x3 {
			shift = 1
		}
		if b[0]>>(shift+1)&1 == 1 {
			return false
		}
		return b[0]>>shift&1 == 0
	}
	return true
}

// opusHead is the CodecPrivate WebM requires for Opus (RFC 7845 5.1):
// version 1, stereo, 312 samples pre-skip (what browsers' encoders use,
// and CodecDelay below), 48 kHz, no gain, mapping family 0.
func opusHead() []byte {
	b := make([]byte, 19)
	copy(b, "OpusHead")
	b[8], b[9] = 1, 2
	binary.LittleEndian.PutUint16(b[10:], 312)
	binary.LittleEndian.PutUint32(b[12:], 48000)
	return b
}

// errWriter keeps the muxer going after the sink fails (the muxer panics
// or stalls on errors), and remembers the failure so the file stops.
type errWriter struct {
	w   io.WriteCloser
	mu  sync.Mutex
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return len(b), nil
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = err
	}
	return len(b), nil
}

func (e *errWriter) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.w.Close()
	if e.err != nil {
		return e.err
	}
	return err
}

func (e *errWriter) failed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err != nil
}
