package media

import (
	"strings"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// codecKind is the forwarding-relevant identity of a negotiated codec: the
// SFU never transcodes, so it only needs to know how to find keyframes.
type codecKind uint8

const (
	codecOther codecKind = iota
	codecOpus
	codecVP8
	codecVP9
	codecH264
)

func kindOfMime(mime string) codecKind {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeOpus):
		return codecOpus
	case strings.ToLower(webrtc.MimeTypeVP8):
		return codecVP8
	case strings.ToLower(webrtc.MimeTypeVP9):
		return codecVP9
	case strings.ToLower(webrtc.MimeTypeH264):
		return codecH264
	}
	return codecOther
}

// keyframeStart reports whether payload is the first packet of a keyframe,
// the only place a subscriber can start or switch layers, and for VP8 also
// the frame size the keyframe announces (zero when unknown).
func keyframeStart(kind codecKind, payload []byte) (key bool, width, height int) {
	switch kind {
	case codecOpus, codecOther:
		return true, 0, 0
	case codecVP8:
		var p codecs.VP8Packet
		frame, err := p.Unmarshal(payload)
		if err != nil || p.S != 1 || p.PID != 0 || len(frame) < 3 {
			return false, 0, 0
		}
		// RFC 6386 9.1: bit 0 of the frame tag is 0 for a keyframe.
		if frame[0]&0x01 != 0 {
			return false, 0, 0
		}
		if len(frame) >= 10 && frame[3] == 0x9d && frame[4] == 0x01 && frame[5] == 0x2a {
			width = int(uint16(frame[6])|uint16(frame[7])<<8) & 0x3fff
			height = int(uint16(frame[8])|uint16(frame[9])<<8) & 0x3fff
		}
		return true, width, height
	case codecVP9:
		var p codecs.VP9Packet
		if _, err := p.Unmarshal(payload); err != nil {
			return false, 0, 0
		}
		if !p.B || p.P {
			return false, 0, 0
		}
		if p.L && p.SID != 0 {
			return false, 0, 0
		}
		if p.V && len(p.Width) > 0 && len(p.Height) > 0 {
			width, height = int(p.Width[0]), int(p.Height[0])
		}
		return true, width, height
	case codecH264:
		return h264KeyframeStart(payload), 0, 0
	}
	return false, 0, 0
}

// h264KeyframeStart finds an SPS or IDR at the start of a frame: a single
// NAL unit, any NAL unit inside a STAP-A, or the first fragment of an FU-A.
func h264KeyframeStart(payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	isKey := func(t byte) bool { return t == 5 || t == 7 }
	switch t := payload[0] & 0x1f; {
	case t >= 1 && t <= 23:
		return isKey(t)
	case t == 24: // STAP-A
		for i := 1; i+2 < len(payload); {
			n := int(payload[i])<<8 | int(payload[i+1])
			i += 2
			if i >= len(payload) {
				break
			}
			if isKey(payload[i] & 0x1f) {
				return true
			}
			i += n
		}
	case t == 28: // FU-A
		if len(payload) < 2 {
			return false
		}
		return payload[1]&0x80 != 0 && isKey(payload[1]&0x1f)
	}
	return false
}

// matchCodec picks, among a subscriber's negotiated codecs, the one that
// carries the publisher's stream unchanged. H.264 must agree on the profile
// and packetization mode; other codecs on the MIME type alone.
func matchCodec(want webrtc.RTPCodecCapability, have []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var loose *webrtc.RTPCodecParameters
	for i, c := range have {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		if kindOfMime(want.MimeType) != codecH264 {
			return c, true
		}
		if fmtpValue(c.SDPFmtpLine, "packetization-mode") == fmtpValue(want.SDPFmtpLine, "packetization-mode") &&
			profileOf(c.SDPFmtpLine) == profileOf(want.SDPFmtpLine) {
			return c, true
		}
		if loose == nil {
			loose = &have[i]
		}
	}
	if loose != nil {
		return *loose, true
	}
	return webrtc.RTPCodecParameters{}, false
}

func fmtpValue(line, key string) string {
	for _, kv := range strings.Split(line, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return strings.ToLower(v)
		}
	}
	if key == "packetization-mode" {
		return "0"
	}
	return ""
}

// profileOf is the profile_idc and constraint byte of an H.264
// profile-level-id; the level may differ between the two sides.
func profileOf(line string) string {
	v := fmtpValue(line, "profile-level-id")
	if len(v) >= 4 {
		return v[:4]
	}
	return v
}
