package meeting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/parleyhq/parley/storage"
)

// FileStore keeps the bytes of files shared in meetings; the meeting
// store keeps their records. Parley's files package provides one for
// production; MemFiles and DirFiles are small ones for tests and simple
// hosts. Methods are called concurrently.
type FileStore interface {
	// Put stores what r yields and returns a reference to it and its
	// size. It reads at most limit+1 bytes; when r has more than limit it
	// stores nothing and returns an error wrapping ErrFileTooLarge.
	Put(ctx context.Context, name string, r io.Reader, limit int64) (ref string, size int64, err error)
	// Open returns the bytes of ref, or an error wrapping
	// storage.ErrNotFound.
	Open(ctx context.Context, ref string) (io.ReadCloser, error)
	// Delete removes ref; a missing ref is not an error.
	Delete(ctx context.Context, ref string) error
}

// MemFiles is a FileStore in memory, for tests. The zero value is
// ready to use.
type MemFiles struct {
	mu    sync.Mutex
	files map[string][]byte
}

// Put stores the bytes of r.
func (m *MemFiles) Put(ctx context.Context, name string, r io.Reader, limit int64) (string, int64, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return "", 0, err
	}
	if int64(len(b)) > limit {
		return "", 0, ErrFileTooLarge
	}
	ref := newToken(16)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = make(map[string][]byte)
	}
	m.files[ref] = b
	return ref, int64(len(b)), nil
}

// Open returns the bytes of ref.
func (m *MemFiles) Open(ctx context.Context, ref string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[ref]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Delete removes ref.
func (m *MemFiles) Delete(ctx context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, ref)
	return nil
}

// Len reports how many files m holds.
func (m *MemFiles) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.files)
}

// DirFiles is a FileStore that keeps each file in its own file under a
// directory, named by a random reference. Uploads stream to a temporary
// file renamed into place once complete, so a failed upload leaves
// nothing behind.
type DirFiles struct {
	dir string
}

// NewDirFiles returns a DirFiles on dir, creating it (mode 0700) if
// needed.
func NewDirFiles(dir string) (*DirFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("meeting: file directory: %w", err)
	}
	return &DirFiles{dir: dir}, nil
}

func (d *DirFiles) path(ref string) (string, error) {
	// References are ours (base64url); anything else is refused rather
	// than joined into a path.
	if len(ref) == 0 || len(ref) > 64 {
		return "", storage.ErrNotFound
	}
	for _, c := range ref {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", storage.ErrNotFound
		}
	}
	return filepath.Join(d.dir, ref), nil
}

// Put streams r to a new file.
func (d *DirFiles) Put(ctx context.Context, name string, r io.Reader, limit int64) (string, int64, error) {
	tmp, err := os.CreateTemp(d.dir, ".upload-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = ErrFileTooLarge
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	ref := newToken(16)
	p, _ := d.path(ref)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", 0, err
	}
	return ref, n, nil
}

// Open opens the file of ref.
func (d *DirFiles) Open(ctx context.Context, ref string) (io.ReadCloser, error) {
	p, err := d.path(ref)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, storage.ErrNotFound
	}
	return f, err
}

// Delete removes the file of ref.
func (d *DirFiles) Delete(ctx context.Context, ref string) error {
	p, err := d.path(ref)
	if err != nil {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
