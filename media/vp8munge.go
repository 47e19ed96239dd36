package media

// VP8 payload descriptor rewriting (RFC 7741 section 4.2). Each simulcast
// layer is its own VP8 stream with its own picture ID and TL0PICIDX
// counters, so a subscriber moved from one layer to another would see
// both jump, and a decoder may take the frames that follow for ones it
// already decoded or for a gap to wait on. The forwarder renumbers them,
// as it does RTP sequence numbers and timestamps, so each subscriber sees
// one stream whose picture IDs and TL0PICIDX run on across switches.

// vp8Fields locates the picture ID and TL0PICIDX in a VP8 payload.
type vp8Fields struct {
	picOff int  // offset of the picture ID, -1 when absent
	wide   bool // 15-bit picture ID (M bit set), else 7-bit
	tl0Off int  // offset of TL0PICIDX, -1 when absent
}

func parseVP8Fields(p []byte) (vp8Fields, bool) {
	f := vp8Fields{picOff: -1, tl0Off: -1}
	if len(p) < 1 {
		return f, false
	}
	if p[0]&0x80 == 0 { // no X: no extensions
		return f, true
	}
	if len(p) < 2 {
		return f, false
	}
	x := p[1]
	i := 2
	if x&0x80 != 0 { // I: picture ID
		if len(p) < i+1 {
			return f, false
		}
		f.picOff = i
		if p[i]&0x80 != 0 {
			f.wide = true
			i += 2
		} else {
			i++
		}
	}
	if x&0x40 != 0 { // L: TL0PICIDX
		f.tl0Off = i
		i++
	}
	if x&0x30 != 0 { // T or K: TID/Y/KEYIDX
		i++
	}
	if len(p) < i {
		return f, false
	}
	return f, true
}

func (f vp8Fields) pictureID(p []byte) uint16 {
	if f.wide {
		return uint16(p[f.picOff]&0x7f)<<8 | uint16(p[f.picOff+1])
	}
	return uint16(p[f.picOff] & 0x7f)
}

func (f vp8Fields) mask() uint16 {
	if f.wide {
		return 0x7fff
	}
	return 0x7f
}

func (f vp8Fields) setPictureID(p []byte, id uint16) {
	if f.wide {
		p[f.picOff] = 0x80 | byte(id>>8)&0x7f
		p[f.picOff+1] = byte(id)
		return
	}
	p[f.picOff] = byte(id) & 0x7f
}

// vp8Munger is a downTrack's renumbering state (writer goroutine only).
type vp8Munger struct {
	started bool
	picOff  uint16 // added to the publisher's picture ID
	tl0Off  uint8  // added to the publisher's TL0PICIDX
	lastPic uint16 // newest picture ID sent
	lastTl0 uint8  // newest TL0PICIDX sent
}

// rebase makes the stream that starts at payload p (a keyframe) continue
// the numbering of what was sent before it.
func (m *vp8Munger) rebase(p []byte) {
	f, ok := parseVP8Fields(p)
	if !ok {
		return
	}
	if !m.started {
		m.picOff, m.tl0Off = 0, 0
		m.started = true
		return
	}
	if f.picOff >= 0 {
		m.picOff = m.lastPic + 1 - f.pictureID(p)
	}
	if f.tl0Off >= 0 {
		m.tl0Off = m.lastTl0 + 1 - p[f.tl0Off]
	}
}

// rewrite renumbers payload p in place with the offsets given (the
// current ones, or those a retransmitted packet was first sent with);
// newest says p is the newest packet sent so far.
func (m *vp8Munger) rewrite(p []byte, picOff uint16, tl0Off uint8, newest bool) {
	f, ok := parseVP8Fields(p)
	if !ok {
		return
	}
	if f.picOff >= 0 {
		id := (f.pictureID(p) + picOff) & f.mask()
		f.setPictureID(p, id)
		if newest {
			m.lastPic = id
		}
	}
	if f.tl0Off >= 0 {
		p[f.tl0Off] += tl0Off
		if newest {
			m.lastTl0 = p[f.tl0Off]
		}
	}
}
