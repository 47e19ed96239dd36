package files

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"sync"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// ThumbSize is the box thumbnails are scaled to fit, in pixels.
const ThumbSize = 320

// maxThumbJobs bounds concurrent thumbnail decodes: a 50-megapixel image
// takes up to 200 MB while it is decoded, so the bound is on memory more
// than on CPU.
const maxThumbJobs = 2

// Errors of thumbnail making; the handler answers them with 404.
var (
	errNotImage = errors.New("files: no thumbnail for this type")
	errTooBig   = errors.New("files: image too large to thumbnail")
)

// thumbnailer makes each thumbnail once: concurrent requests for the same
// file wait for the first, and at most maxThumbJobs decode at a time.
type thumbnailer struct {
	sem   chan struct{}
	mu    sync.Mutex
	calls map[string]*thumbCall
}

type thumbCall struct {
	done      chan struct{}
	err       error
	abandoned bool // the making request's context ended first
}

func (t *thumbnailer) init() {
	t.sem = make(chan struct{}, maxThumbJobs)
	t.calls = make(map[string]*thumbCall)
}

// thumbFormat returns the decoder name for a sniffed type, "" if it is
// not one Parley thumbnails.
func thumbFormat(sniffed string) string {
	switch sniffed {
	case "image/jpeg":
		return "jpeg"
	case "image/png":
		return "png"
	case "image/gif":
		return "gif"
	case "image/webp":
		return "webp"
	}
	return ""
}

func thumbnailable(contentType string) bool { return thumbFormat(baseType(contentType)) != "" }

func decodeConfig(format string, r io.Reader) (image.Config, error) {
	switch format {
	case "jpeg":
		return jpeg.DecodeConfig(r)
	case "png":
		return png.DecodeConfig(r)
	case "gif":
		return gif.DecodeConfig(r)
	case "webp":
		return webp.DecodeConfig(r)
	}
	return image.Config{}, errNotImage
}

// decodeImage decodes one image; for a GIF, its first frame.
func decodeImage(format string, r io.Reader) (image.Image, error) {
	switch format {
	case "jpeg":
		return jpeg.Decode(r)
	case "png":
		return png.Decode(r)
	case "gif":
		return gif.Decode(r)
	case "webp":
		return webp.Decode(r)
	}
	return nil, errNotImage
}

// makeThumb reads an image of the given format and size from r and
// returns its thumbnail, JPEG when opaque and PNG otherwise. The header is
// read first, and an image over maxPixels or maxBytes is refused before a
// pixel buffer exists: a 100000x100000 PNG of a few hundred bytes costs a
// few kilobytes to refuse, not 40 GB.
func makeThumb(r io.ReadSeeker, size int64, format string, maxPixels, maxBytes int64) ([]byte, error) {
	if size > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes", errTooBig, size)
	}
	cfg, err := decodeConfig(format, bufio.NewReaderSize(r, 4096))
	if err != nil {
		return nil, fmt.Errorf("files: reading image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("files: image has no pixels")
	}
	if int64(cfg.Width) > maxPixels || int64(cfg.Height) > maxPixels || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, fmt.Errorf("%w: %dx%d", errTooBig, cfg.Width, cfg.Height)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	src, err := decodeImage(format, bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("files: decoding image: %w", err)
	}
	return encodeThumb(scaleToFit(src, ThumbSize))
}

// scaleToFit scales src down to fit a box x box square, keeping its aspect
// ratio; smaller images keep their size.
func scaleToFit(src image.Image, box int) *image.RGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > box || h > box {
		if w >= h {
			w, h = box, max(1, h*box/w)
		} else {
			w, h = max(1, w*box/h), box
		}
	}
	// A kernel over a 4000-pixel-wide photo weighs ~25 source pixels per
	// output pixel and axis; averaging boxes first, down to at least twice
	// the target size, gives the same picture several times faster.
	if f := min(b.Dx()/(2*w), b.Dy()/(2*h)); f >= 2 {
		src = boxShrink(src, f)
		b = src.Bounds()
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// Catmull-Rom gives clean downscales and x/image/draw has fast paths
	// for the types the decoders return; for any other type (paletted
	// GIF frames, 16-bit PNG) the generic path is per-pixel interface
	// calls, and bilinear sampling keeps that cheap.
	var s draw.Scaler = draw.ApproxBiLinear
	switch src.(type) {
	case *image.YCbCr, *image.RGBA, *image.NRGBA, *image.Gray:
		s = draw.CatmullRom
	}
	s.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// boxShrink returns src reduced by an integer factor f, each output pixel
// the average of an f x f block (the right and bottom f-1 pixels at most
// are dropped). YCbCr planes are averaged as they are: the conversion to
// RGB is affine, so that equals averaging RGB. Other image types are
// returned unchanged.
func boxShrink(src image.Image, f int) image.Image {
	switch m := src.(type) {
	case *image.YCbCr:
		return shrinkYCbCr(m, f)
	case *image.RGBA:
		r := image.NewRGBA(image.Rect(0, 0, m.Rect.Dx()/f, m.Rect.Dy()/f))
		shrink4(r.Pix, r.Stride, m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride, r.Rect.Dx(), r.Rect.Dy(), f)
		return r
	case *image.NRGBA:
		r := image.NewNRGBA(image.Rect(0, 0, m.Rect.Dx()/f, m.Rect.Dy()/f))
		shrink4(r.Pix, r.Stride, m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride, r.Rect.Dx(), r.Rect.Dy(), f)
		return r
	}
	return src
}

// shrink4 box-averages 4-byte pixels from src (stride ss) into a w x h
// dst (stride ds).
func shrink4(dst []byte, ds int, src []byte, ss int, w, h, f int) {
	sums := make([]uint32, 4*w)
	n := uint32(f * f)
	for y := 0; y < h; y++ {
		clear(sums)
		for sy := y * f; sy < (y+1)*f; sy++ {
			row := src[sy*ss : sy*ss+4*w*f]
			for x := 0; x < w*f; x++ {
				o := 4 * (x / f)
				sums[o] += uint32(row[4*x])
				sums[o+1] += uint32(row[4*x+1])
				sums[o+2] += uint32(row[4*x+2])
				sums[o+3] += uint32(row[4*x+3])
			}
		}
		out := dst[y*ds : y*ds+4*w]
		for i, v := range sums {
			out[i] = uint8((v + n/2) / n)
		}
	}
}

func shrinkYCbCr(m *image.YCbCr, f int) *image.YCbCr {
	w, h := m.Rect.Dx()/f, m.Rect.Dy()/f
	out := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio444)
	sy, cb, cr := make([]uint32, w), make([]uint32, w), make([]uint32, w)
	n := uint32(f * f)
	x0, y0 := m.Rect.Min.X, m.Rect.Min.Y
	for y := 0; y < h; y++ {
		clear(sy)
		clear(cb)
		clear(cr)
		for yy := y0 + y*f; yy < y0+(y+1)*f; yy++ {
			yi := m.YOffset(x0, yy)
			for x := 0; x < w*f; x++ {
				X := x / f
				sy[X] += uint32(m.Y[yi+x])
				ci := m.COffset(x0+x, yy)
				cb[X] += uint32(m.Cb[ci])
				cr[X] += uint32(m.Cr[ci])
			}
		}
		o := y * out.YStride
		for X := 0; X < w; X++ {
			out.Y[o+X] = uint8((sy[X] + n/2) / n)
			out.Cb[o+X] = uint8((cb[X] + n/2) / n)
			out.Cr[o+X] = uint8((cr[X] + n/2) / n)
		}
	}
	return out
}

func encodeThumb(img *image.RGBA) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	if img.Opaque() {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img)
	}
	return buf.Bytes(), err
}

// thumbnail returns the thumbnail blob of f, making and caching it first
// if needed. format is from the file's sniffed type.
func (s *Service) thumbnail(ctx context.Context, f File, format string) (io.ReadSeekCloser, int64, error) {
	tid := thumbID(f.ID)
	if rc, n, err := s.store.Open(ctx, tid); err == nil {
		if n == 0 { // a failed decode is remembered as an empty blob
			rc.Close()
			return nil, 0, errNotImage
		}
		return rc, n, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, 0, err
	}
	if err := s.makeThumbOnce(ctx, f, format); err != nil {
		return nil, 0, err
	}
	rc, n, err := s.store.Open(ctx, tid)
	if err == nil && n == 0 {
		rc.Close()
		return nil, 0, errNotImage
	}
	return rc, n, err
}

// makeThumbOnce makes f's thumbnail, or waits for the request already
// making it; if that request gives up (its context ends), the next waiter
// takes over.
func (s *Service) makeThumbOnce(ctx context.Context, f File, format string) error {
	t := &s.thumbs
	for {
		t.mu.Lock()
		c, ok := t.calls[f.ID]
		if !ok {
			break // with t.mu held
		}
		t.mu.Unlock()
		select {
		case <-c.done:
			if c.abandoned && ctx.Err() == nil {
				continue
			}
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &thumbCall{done: make(chan struct{})}
	t.calls[f.ID] = c
	t.mu.Unlock()

	c.err = s.makeThumbFile(ctx, f, format)
	c.abandoned = ctx.Err() != nil
	t.mu.Lock()
	delete(t.calls, f.ID)
	t.mu.Unlock()
	close(c.done)
	return c.err
}

func (s *Service) makeThumbFile(ctx context.Context, f File, format string) error {
	select {
	case s.thumbs.sem <- struct{}{}:
		defer func() { <-s.thumbs.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	rc, size, err := s.store.Open(ctx, f.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := makeThumb(rc, size, format, s.cfg.MaxImagePixels, s.cfg.MaxImageBytes)
	if errors.Is(err, errTooBig) {
		s.log.Info("files: image refused for thumbnail", "id", f.ID, "err", err)
		return err // not remembered: the limits may be raised
	}
	if err != nil {
		s.log.Info("files: no thumbnail", "id", f.ID, "err", err)
		data = nil // remembered as an empty blob, so it is not decoded again
	}
	if _, perr := s.store.Put(ctx, thumbID(f.ID), bytes.NewReader(data)); perr != nil {
		return perr
	}
	if err != nil {
		return errNotImage
	}
	return nil
}

func (s *Service) serveThumb(w http.ResponseWriter, r *http.Request) {
	f, rc, head, ok := s.openFile(w, r)
	if !ok {
		return
	}
	rc.Close()
	format := thumbFormat(baseType(http.DetectContentType(head)))
	if format == "" {
		http.Error(w, "no thumbnail for this file", http.StatusNotFound)
		return
	}
	th, _, err := s.thumbnail(r.Context(), f, format)
	switch {
	case errors.Is(err, errNotImage), errors.Is(err, errTooBig):
		http.Error(w, "no thumbnail for this file", http.StatusNotFound)
		return
	case err != nil:
		if r.Context().Err() == nil {
			s.log.Error("files: thumbnail", "id", f.ID, "err", err)
		}
		http.Error(w, "could not make the thumbnail", http.StatusInternalServerError)
		return
	}
	defer th.Close()
	thead := make([]byte, sniffLen)
	n, _ := io.ReadFull(th, thead)
	if _, err := th.Seek(0, io.SeekStart); err != nil {
		http.Error(w, "could not read the thumbnail", http.StatusInternalServerError)
		return
	}
	p := classify("", "", thead[:n])
	if p.kind != kindImage { // never: we wrote it; but never serve it blind either
		http.Error(w, "no thumbnail for this file", http.StatusNotFound)
		return
	}
	h := w.Header()
	name := "thumbnail.jpg"
	if p.contentType == "image/png" {
		name = "thumbnail.png"
	}
	setFileHeaders(h, p, name, false)
	h.Set("ETag", `"`+f.SHA256+`-thumb"`)
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(w, r, "", f.Created, th)
}
