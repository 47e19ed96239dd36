package media

import "encoding/binary"

// rtpInfo is what the forwarding path needs from an RTP header, parsed
// without allocating (rtp.Header.Unmarshal builds extension slices).
type rtpInfo struct {
	marker  bool
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	hdrLen  int // fixed header, CSRCs and extension block
	padLen  int
	extProf uint16
	extOff  int // start of the extension data, 0 when none
	extLen  int
}

func parseRTP(b []byte) (rtpInfo, bool) {
	var r rtpInfo
	if len(b) < 12 || b[0]>>6 != 2 {
		return r, false
	}
	r.marker = b[1]&0x80 != 0
	r.pt = b[1] & 0x7f
	r.seq = binary.BigEndian.Uint16(b[2:])
	r.ts = binary.BigEndian.Uint32(b[4:])
	r.ssrc = binary.BigEndian.Uint32(b[8:])
	n := 12 + 4*int(b[0]&0x0f)
	if len(b) < n {
		return r, false
	}
	if b[0]&0x10 != 0 {
		if len(b) < n+4 {
			return r, false
		}
		r.extProf = binary.BigEndian.Uint16(b[n:])
		r.extLen = 4 * int(binary.BigEndian.Uint16(b[n+2:]))
		r.extOff = n + 4
		n += 4 + r.extLen
		if len(b) < n {
			return r, false
		}
	}
	r.hdrLen = n
	if b[0]&0x20 != 0 {
		r.padLen = int(b[len(b)-1])
		if r.padLen == 0 || n+r.padLen > len(b) {
			return r, false
		}
	}
	return r, true
}

func (r *rtpInfo) payload(b []byte) []byte { return b[r.hdrLen : len(b)-r.padLen] }

// extension returns the value of one-byte (RFC 8285 0xBEDE) or two-byte
// header extension id, or nil.
func (r *rtpInfo) extension(b []byte, id uint8) []byte {
	if r.extOff == 0 || id == 0 {
		return nil
	}
	ext := b[r.extOff : r.extOff+r.extLen]
	switch {
	case r.extProf == 0xbede:
		for i := 0; i < len(ext); {
			if ext[i] == 0 {
				i++
				continue
			}
			eid, l := ext[i]>>4, int(ext[i]&0x0f)+1
			if eid == 15 {
				return nil
			}
			i++
			if i+l > len(ext) {
				return nil
			}
			if eid == id {
				return ext[i : i+l]
			}
			i += l
		}
	case r.extProf&0xfff0 == 0x1000:
		for i := 0; i+1 < len(ext); {
			if ext[i] == 0 {
				i++
				continue
			}
			eid, l := ext[i], int(ext[i+1])
			i += 2
			if i+l > len(ext) {
				return nil
			}
			if eid == id {
				return ext[i : i+l]
			}
			i += l
		}
	}
	return nil
}

// seqAfter reports whether sequence number a comes after b, modulo 2^16.
func seqAfter(a, b uint16) bool { return a != b && a-b < 0x8000 }
