package files

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDirStoreIDs(t *testing.T) {
	st, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, id := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".thumb", "a\x00b", "index.db/../x", strings.Repeat("a", 129), "é"} {
		if _, err := st.Put(ctx, id, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) accepted", id)
		}
		if _, _, err := st.Open(ctx, id); err == nil {
			t.Errorf("Open(%q) accepted", id)
		}
		if err := st.Delete(ctx, id); err == nil {
			t.Errorf("Delete(%q) accepted", id)
		}
	}
}

func TestDirStoreBlobs(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	id := strings.Repeat("k", 32)
	if n, err := st.Put(ctx, id, strings.NewReader("first")); err != nil || n != 5 {
		t.Fatal(n, err)
	}
	// a failing replacement leaves the old content
	if _, err := st.Put(ctx, id, io.MultiReader(strings.NewReader("second"), &failingReader{})); err == nil {
		t.Fatal("failing Put succeeded")
	}
	rc, n, err := st.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "first" || n != 5 {
		t.Errorf("after failed replace: %q (%d)", b, n)
	}
	// no temporary files are left behind
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp holds %d files", len(ents))
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(dir, "blobs", "kk", id))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("blob mode %v", fi.Mode().Perm())
		}
	}
	// a cancelled context stores nothing
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Put(cctx, "other", strings.NewReader("x")); err == nil {
		t.Error("Put with a cancelled context succeeded")
	}
	if err := st.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, id); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, _, err := st.Open(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after Delete: %v", err)
	}
}

func TestDirStoreIndex(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := File{ID: "f1", Owner: "a@x", Name: "n.txt", Size: 10, ContentType: "text/plain", SHA256: "ab", Created: t0}
	if err := st.PutFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got, err := st.File(ctx, "f1"); err != nil || got != f {
		t.Errorf("File = %+v, %v", got, err)
	}
	if _, err := st.File(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing File: %v", err)
	}
	// replacing keeps the usage right
	f.Size = 30
	st.PutFile(ctx, f)
	st.PutFile(ctx, File{ID: "f2", Owner: "a@x", Size: 5, Created: t0})
	if u, _ := st.Usage(ctx, "a@x"); u != 35 {
		t.Errorf("usage = %d", u)
	}
	if err := st.AddShare(ctx, "nope", Share{From: "a@x", To: "b@x", At: t0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("share of a missing file: %v", err)
	}
	st.AddShare(ctx, "f1", Share{From: "a@x", To: "b@x", At: t0.Add(time.Hour)})
	st.AddShare(ctx, "f1", Share{From: "b@x", To: "a@x", At: t0}) // older: ignored
	st.AddShare(ctx, "f2", Share{From: "b@x", To: "a@x", At: t0.Add(2 * time.Hour)})
	st.AddShare(ctx, "f2", Share{From: "a@x", To: "c@x", At: t0.Add(3 * time.Hour)})
	st.Close()

	// everything survives a reopen
	st, err = NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := st.Exchanged(ctx, "b@x", "a@x")
	if err != nil || len(l) != 2 || l[0].ID != "f2" || l[1].ID != "f1" || l[1].SharedBy != "a@x" || !l[1].SharedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Exchanged = %+v, %v", l, err)
	}
	if err := st.DeleteFile(ctx, "f2"); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.Exchanged(ctx, "a@x", "c@x"); len(l) != 0 {
		t.Errorf("share survived DeleteFile: %+v", l)
	}
	if u, _ := st.Usage(ctx, "a@x"); u != 30 {
		t.Errorf("usage after delete = %d", u)
	}
	if err := st.DeleteFile(ctx, "f2"); err != nil {
		t.Errorf("second DeleteFile: %v", err)
	}
}

func TestDirStoreLocked(t *testing.T) {
	dir := t.TempDir()
	st, err := NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if runtime.GOOS == "windows" {
		t.Skip("bbolt locking differs")
	}
	start := time.Now()
	if st2, err := NewDirStore(dir); err == nil {
		st2.Close()
		t.Fatal("second DirStore on the same directory opened")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("waited too long for the lock")
	}
}
