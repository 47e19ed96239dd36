package files

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"testing"
)

// TestUploadStreams proves an upload is never held in memory: a 32 MiB
// PUT and GET allocate a small fraction of that in the whole process.
func TestUploadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("32 MiB upload")
	}
	e := newEnv(t, Config{})
	data := randomBytes(t, 32<<20)
	s, err := e.svc.Slot(context.Background(), alice, "big.bin", int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if code := e.put(s, "", data); code != http.StatusCreated {
		t.Fatalf("PUT: %d", code)
	}
	resp, err := e.srv.Client().Get(s.GetURL)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if n != int64(len(data)) {
		t.Fatalf("GET returned %d bytes", n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("a 32 MiB upload and download allocated %d bytes", alloc)
	}
}

func BenchmarkUpload64MiB(b *testing.B) {
	e := newEnv(b, Config{MaxFileSize: 1 << 30, UserQuota: -1})
	data := randomBytes(b, 64<<20)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		s, err := e.svc.Slot(ctx, alice, "big.bin", int64(len(data)), "application/octet-stream")
		if err != nil {
			b.Fatal(err)
		}
		if code := e.put(s, "application/octet-stream", data); code != http.StatusCreated {
			b.Fatalf("PUT: %d", code)
		}
		b.StopTimer()
		e.svc.Delete(ctx, s.FileID)
		b.StartTimer()
	}
}

func BenchmarkDownload64MiB(b *testing.B) {
	e := newEnv(b, Config{MaxFileSize: 1 << 30})
	data := randomBytes(b, 64<<20)
	s := e.upload(alice, "big.bin", "", data)
	client := e.srv.Client()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		resp, err := client.Get(s.GetURL)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("GET: %d bytes, %v", n, err)
		}
	}
}

// photo4000x3000 is a JPEG with smooth gradients and noise, like a photo.
func photo4000x3000(b testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	r := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < 3000; y++ {
		for x := 0; x < 4000; x++ {
			n := uint8(r.IntN(24))
			img.SetRGBA(x, y, color.RGBA{uint8(x*200/4000) + n, uint8(y*200/3000) + n, 120 + n, 255})
		}
	}
	return jpegOf(b, img)
}

func BenchmarkThumbnail4000x3000JPEG(b *testing.B) {
	data := photo4000x3000(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		th, err := makeThumb(bytes.NewReader(data), int64(len(data)), "jpeg", DefaultMaxImagePixels, DefaultMaxImageBytes)
		if err != nil || len(th) == 0 {
			b.Fatal(err)
		}
	}
}
