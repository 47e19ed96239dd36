package files

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 90, 255})
		}
	}
	return img
}

func jpegOf(t testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pngOf(t testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// animatedGIF has a red first frame and a blue second one.
func animatedGIF(t testing.TB, w, h int) []byte {
	g := &gif.GIF{}
	for _, c := range []color.Color{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}} {
		fr := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		for i := range fr.Pix {
			fr.Pix[i] = uint8(fr.Palette.Index(c))
		}
		g.Image = append(g.Image, fr)
		g.Delay = append(g.Delay, 10)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bitWriter writes VP8L's little-endian bit stream.
type bitWriter struct {
	buf   []byte
	acc   uint64
	nbits uint
}

func (b *bitWriter) write(v uint64, n uint) {
	b.acc |= v << b.nbits
	b.nbits += n
	for b.nbits >= 8 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
		b.nbits -= 8
	}
}

func (b *bitWriter) bytes() []byte {
	if b.nbits > 0 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc, b.nbits = 0, 0
	}
	return b.buf
}

// losslessWebP encodes img as a minimal lossless WebP (VP8L, RFC 9649
// section 3) built by hand: no transforms, no color cache, no meta prefix
// codes, and for each channel a "simple" prefix code of the values 0 and
// 255 (one bit per channel and pixel; alpha takes no bits when the image
// is opaque). Each channel of img is rounded to 0 or 255, which is all a
// thumbnail test needs.
func losslessWebP(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	opaque := true
	for y := b.Min.Y; y < b.Max.Y && opaque; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a < 0x8000 {
				opaque = false
				break
			}
		}
	}
	var bw bitWriter
	bw.write(0x2f, 8) // signature
	bw.write(uint64(w-1), 14)
	bw.write(uint64(h-1), 14)
	if opaque {
		bw.write(0, 1)
	} else {
		bw.write(1, 1)
	}
	bw.write(0, 3)         // version
	bw.write(0, 1)         // no transform
	bw.write(0, 1)         // no color cache
	bw.write(0, 1)         // no meta prefix codes
	twoSymbols := func() { // simple code, 2 symbols, 8-bit first: 0 -> bit 0, 255 -> bit 1
		bw.write(1, 1)
		bw.write(1, 1)
		bw.write(1, 1)
		bw.write(0, 8)
		bw.write(255, 8)
	}
	oneSymbol := func(sym uint64) { // simple code, 1 symbol: takes no bits
		bw.write(1, 1)
		bw.write(0, 1)
		bw.write(1, 1)
		bw.write(sym, 8)
	}
	twoSymbols() // green
	twoSymbols() // red
	twoSymbols() // blue
	if opaque {
		oneSymbol(255)
	} else {
		twoSymbols()
	}
	oneSymbol(0) // distance, unused
	bit := func(v uint32) uint64 {
		if v >= 0x8000 {
			return 1
		}
		return 0
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			bw.write(bit(g), 1)
			bw.write(bit(r), 1)
			bw.write(bit(bl), 1)
			if !opaque {
				bw.write(bit(a), 1)
			}
		}
	}
	data := bw.bytes()
	var out bytes.Buffer
	chunk := len(data) + len(data)%2
	out.WriteString("RIFF")
	binary.Write(&out, binary.LittleEndian, uint32(4+8+chunk))
	out.WriteString("WEBPVP8L")
	binary.Write(&out, binary.LittleEndian, uint32(len(data)))
	out.Write(data)
	if len(data)%2 == 1 {
		out.WriteByte(0)
	}
	return out.Bytes()
}

// checkerboard has 8-pixel squares of red and cyan, or transparent.
func checkerboard(w, h int, transparent bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{255, 0, 0, 255}
			if (x/8+y/8)%2 == 1 {
				c = color.NRGBA{0, 255, 255, 255}
				if transparent {
					c.A = 0
				}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func TestHandMadeWebPDecodes(t *testing.T) {
	src := checkerboard(20, 10, false)
	img, err := webp.Decode(bytes.NewReader(losslessWebP(src)))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != src.Bounds() {
		t.Fatalf("bounds %v", img.Bounds())
	}
	for y := 0; y < 10; y++ {
		for x := 0; x < 20; x++ {
			r1, g1, b1, a1 := img.At(x, y).RGBA()
			r2, g2, b2, a2 := src.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				t.Fatalf("pixel %d,%d = %v, want %v", x, y, img.At(x, y), src.At(x, y))
			}
		}
	}
}

func TestThumbnails(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name, ct string
		data     []byte
		wantType string
		w, h     int
	}{
		{"photo.jpg", "image/jpeg", jpegOf(t, gradient(800, 600)), "image/jpeg", 320, 240},
		{"tall.jpg", "image/jpeg", jpegOf(t, gradient(300, 1200)), "image/jpeg", 80, 320},
		{"opaque.png", "image/png", pngOf(t, gradient(640, 640)), "image/jpeg", 320, 320},
		{"alpha.png", "image/png", pngOf(t, checkerboard(400, 200, true)), "image/png", 320, 160},
		{"small.png", "image/png", pngOf(t, gradient(100, 50)), "image/jpeg", 100, 50},
		{"anim.gif", "image/gif", animatedGIF(t, 640, 480), "image/jpeg", 320, 240},
		{"pic.webp", "image/webp", losslessWebP(checkerboard(640, 480, false)), "image/jpeg", 320, 240},
		{"alpha.webp", "image/webp", losslessWebP(checkerboard(64, 64, true)), "image/png", 64, 64},
	} {
		s := e.upload(alice, tc.name, tc.ct, tc.data)
		f := mustFile(t, e, s.FileID)
		thumbURL := e.svc.URLs(f).Thumb
		if thumbURL == "" {
			t.Errorf("%s: no thumb URL", tc.name)
			continue
		}
		resp, body := e.get(thumbURL)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.wantType {
			t.Errorf("%s: %d %q, want %s", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), tc.wantType)
			continue
		}
		assertFileSecurity(t, resp, tc.name+" thumb")
		img, _, err := image.Decode(bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: thumbnail does not decode: %v", tc.name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
			t.Errorf("%s: thumbnail %dx%d, want %dx%d", tc.name, b.Dx(), b.Dy(), tc.w, tc.h)
		}
		if tc.name == "anim.gif" {
			r, g, b, _ := img.At(160, 120).RGBA()
			if r>>8 < 200 || g>>8 > 60 || b>>8 > 60 {
				t.Errorf("gif thumbnail is not the red first frame: %v", img.At(160, 120))
			}
		}
		// made once, then served from the cache next to the file
		if _, n, err := e.svc.store.Open(t.Context(), thumbID(f.ID)); err != nil || n != int64(len(body)) {
			t.Errorf("%s: cached thumbnail: %d bytes, %v", tc.name, n, err)
		}
		_, again := e.get(thumbURL)
		if !bytes.Equal(again, body) {
			t.Errorf("%s: second thumbnail differs", tc.name)
		}
	}
}

func TestThumbnailConcurrentOnce(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.upload(alice, "p.jpg", "image/jpeg", jpegOf(t, gradient(1600, 1200)))
	var wg sync.WaitGroup
	bodies := make([][]byte, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := e.get(e.srv.URL + "/parley/files/thumb/" + s.FileID)
			if resp.StatusCode == 200 {
				bodies[i] = body
			}
		}()
	}
	wg.Wait()
	for i := range bodies {
		if bodies[i] == nil || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("request %d got a different or no thumbnail", i)
		}
	}
}

// bombPNG is a valid PNG header claiming w x h RGBA pixels, followed by
// a token IDAT: a few hundred bytes that would need w*h*4 bytes decoded.
func bombPNG(w, h uint32) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&buf, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		buf.WriteString(typ)
		buf.Write(data)
		binary.Write(&buf, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8 bits, RGBA
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1})
	chunk("IEND", nil)
	return buf.Bytes()
}

func TestImageBombRefused(t *testing.T) {
	bomb := bombPNG(100000, 100000)
	if cfg, err := png.DecodeConfig(bytes.NewReader(bomb)); err != nil || cfg.Width != 100000 {
		t.Fatalf("the bomb is not a valid PNG header: %v %+v", err, cfg)
	}

	// directly: refused with a few kilobytes allocated
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := makeThumb(bytes.NewReader(bomb), int64(len(bomb)), "png", DefaultMaxImagePixels, DefaultMaxImageBytes)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("makeThumb(bomb) = %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing the bomb allocated %d bytes", alloc)
	}
	if took > 100*time.Millisecond {
		t.Errorf("refusing the bomb took %v", took)
	}

	// through the handler
	e := newEnv(t, Config{})
	s := e.upload(alice, "bomb.png", "image/png", bomb)
	runtime.GC()
	runtime.ReadMemStats(&before)
	start = time.Now()
	resp, _ := e.get(e.srv.URL + "/parley/files/thumb/" + s.FileID)
	took = time.Since(start)
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("thumb of bomb: %d", resp.StatusCode)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("the thumbnail request allocated %d bytes", alloc)
	}
	if took > time.Second {
		t.Errorf("the thumbnail request took %v", took)
	}
	// the file itself is still an image the browser may show (it will
	// refuse it the same way); only the server does not decode it
	if resp, _ := e.get(s.GetURL); resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("bomb served as %q", resp.Header.Get("Content-Type"))
	}
}

func TestThumbnailLimits(t *testing.T) {
	e := newEnv(t, Config{MaxImagePixels: 100 * 100, MaxImageBytes: 50_000})
	over := e.upload(alice, "a.png", "image/png", pngOf(t, gradient(101, 100)))
	if resp, _ := e.get(e.srv.URL + "/parley/files/thumb/" + over.FileID); resp.StatusCode != http.StatusNotFound {
		t.Errorf("over the pixel limit: %d", resp.StatusCode)
	}
	at := e.upload(alice, "b.png", "image/png", pngOf(t, gradient(100, 100)))
	if resp, _ := e.get(e.srv.URL + "/parley/files/thumb/" + at.FileID); resp.StatusCode != 200 {
		t.Errorf("at the pixel limit: %d", resp.StatusCode)
	}
	big := jpegOf(t, gradient(90, 90))
	big = append(big, make([]byte, 60_000)...) // trailing bytes after EOI
	bs := e.upload(alice, "c.jpg", "image/jpeg", big)
	if resp, _ := e.get(e.srv.URL + "/parley/files/thumb/" + bs.FileID); resp.StatusCode != http.StatusNotFound {
		t.Errorf("over the byte limit: %d", resp.StatusCode)
	}
}

func TestThumbnailBrokenAndNonImages(t *testing.T) {
	e := newEnv(t, Config{})
	broken := pngOf(t, gradient(50, 50))
	broken = broken[:len(broken)/2]
	s := e.upload(alice, "broken.png", "image/png", broken)
	for range 2 { // the second time from the remembered failure
		if resp, _ := e.get(e.srv.URL + "/parley/files/thumb/" + s.FileID); resp.StatusCode != http.StatusNotFound {
			t.Errorf("broken png: %d", resp.StatusCode)
		}
	}
	if _, n, err := e.svc.store.Open(t.Context(), thumbID(s.FileID)); err != nil || n != 0 {
		t.Errorf("failure not remembered: %d, %v", n, err)
	}
	for _, tc := range []struct{ name, ct, body string }{
		{"x.txt", "text/plain", "hello"},
		{"x.svg", "image/svg+xml", svgWithScript},
		{"fake.png", "image/png", htmlPage},
	} {
		s := e.upload(alice, tc.name, tc.ct, []byte(tc.body))
		if resp, _ := e.get(e.srv.URL + "/parley/files/thumb/" + s.FileID); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", tc.name, resp.StatusCode)
		}
	}
}

// The box pre-shrink must not change the picture: compare with a plain
// Catmull-Rom scale of the full image.
func TestBoxShrinkMatchesKernel(t *testing.T) {
	for _, name := range []string{"ycbcr420", "rgba", "nrgba"} {
		var src image.Image
		switch name {
		case "ycbcr420":
			img, err := jpeg.Decode(bytes.NewReader(jpegOf(t, gradient(1700, 1000))))
			if err != nil {
				t.Fatal(err)
			}
			if ycc, ok := img.(*image.YCbCr); !ok || ycc.SubsampleRatio != image.YCbCrSubsampleRatio420 {
				t.Fatalf("decoded %T", img)
			}
			src = img
		case "rgba":
			src = gradient(1700, 1000)
		case "nrgba":
			g := gradient(1700, 1000)
			n := image.NewNRGBA(g.Rect)
			copy(n.Pix, g.Pix) // opaque: the same bytes
			src = n
		}
		got := scaleToFit(src, ThumbSize)
		want := image.NewRGBA(got.Rect)
		draw.CatmullRom.Scale(want, want.Rect, src, src.Bounds(), draw.Src, nil)
		var diff, n int
		for i := range got.Pix {
			d := int(got.Pix[i]) - int(want.Pix[i])
			diff += max(d, -d)
			n++
		}
		if mean := float64(diff) / float64(n); mean > 2 {
			t.Errorf("%s: mean difference %.2f per channel", name, mean)
		}
	}
}
