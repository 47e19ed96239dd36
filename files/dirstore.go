package files

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DirStore is the default Store: blobs as files in a directory tree and
// the records in one bbolt file beside them.
//
//	<dir>/blobs/<first two characters of the ID>/<ID>   contents, mode 0600
//	<dir>/tmp/                                          uploads in progress
//	<dir>/index.db                                      records (bbolt)
//
// A blob is written to tmp, synced, and renamed into place, so a crash or
// an aborted upload never leaves a partial file under its ID. IDs are
// checked before they touch a path, so no ID can name a file outside the
// blobs tree. Only one DirStore may have a directory open at a time (bbolt
// locks index.db).
type DirStore struct {
	dir string
	db  *bolt.DB
}

// bbolt buckets of index.db.
var (
	bucketFiles  = []byte("files")  // id -> JSON record
	bucketUsage  = []byte("usage")  // owner -> 8-byte total size
	bucketConvs  = []byte("convs")  // pair(a,b) \0 id -> share value
	bucketShares = []byte("shares") // id \0 pair(a,b) -> nil, to find convs keys on delete
)

// NewDirStore opens (creating if needed) a DirStore in dir. Temporary
// files older than a day, left by a crash, are removed.
func NewDirStore(dir string) (*DirStore, error) {
	if dir == "" {
		return nil, errors.New("files: NewDirStore: empty directory")
	}
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("files: opening the index: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketFiles, bucketUsage, bucketConvs, bucketShares} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("files: preparing the index: %w", err)
	}
	s := &DirStore{dir: dir, db: db}
	s.cleanTmp(24 * time.Hour)
	return s, nil
}

func (s *DirStore) cleanTmp(age time.Duration) {
	tmp := filepath.Join(s.dir, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
}

// validID reports whether id is safe to use as a file name: it cannot be
// empty, ".", "..", contain a separator, or start with a dot.
func validID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func (s *DirStore) path(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("files: invalid blob id %q", id)
	}
	shard := id[:min(2, len(id))]
	return filepath.Join(s.dir, "blobs", shard, id), nil
}

// Put implements Blobs: it writes to a temporary file, syncs it and
// renames it over id.
func (s *DirStore) Put(ctx context.Context, id string, r io.Reader) (int64, error) {
	dst, err := s.path(id)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-*") // mode 0600
	if err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	tmp := f.Name()
	// 128 KiB chunks: a quarter of the write calls io.Copy would make.
	// The struct hides f's ReadFrom, which would use a 32 KiB buffer.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, make([]byte, 128<<10))
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return n, fmt.Errorf("files: storing %s: %w", id, err)
	}
	syncDir(filepath.Dir(dst))
	return n, nil
}

// syncDir makes a rename durable; where directories cannot be synced
// (some platforms) the rename is still atomic, only not yet durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Open implements Blobs.
func (s *DirStore) Open(ctx context.Context, id string) (io.ReadSeekCloser, int64, error) {
	p, err := s.path(id)
	if err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("files: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("files: %w", err)
	}
	return f, st.Size(), nil
}

// Delete implements Blobs.
func (s *DirStore) Delete(ctx context.Context, id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("files: %w", err)
	}
	return nil
}

// record is the stored form of a File, decoupled from the exported type
// so that the exported one can change without touching old index files.
type record struct {
	ID          string    `json:"id"`
	Owner       string    `json:"owner"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	ContentType string    `json:"type,omitempty"`
	SHA256      string    `json:"sha256"`
	Created     time.Time `json:"created"`
}

func toRecord(f File) record {
	return record{f.ID, f.Owner, f.Name, f.Size, f.ContentType, f.SHA256, f.Created.UTC()}
}

func (r record) file() File {
	return File{ID: r.ID, Owner: r.Owner, Name: r.Name, Size: r.Size, ContentType: r.ContentType, SHA256: r.SHA256, Created: r.Created}
}

func getRecord(tx *bolt.Tx, id string) (record, bool, error) {
	v := tx.Bucket(bucketFiles).Get([]byte(id))
	if v == nil {
		return record{}, false, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return record{}, false, fmt.Errorf("files: corrupt record %s: %w", id, err)
	}
	return r, true, nil
}

func addUsage(tx *bolt.Tx, owner string, delta int64) error {
	b := tx.Bucket(bucketUsage)
	var cur int64
	if v := b.Get([]byte(owner)); len(v) == 8 {
		cur = int64(binary.BigEndian.Uint64(v))
	}
	cur += delta
	if cur <= 0 {
		return b.Delete([]byte(owner))
	}
	return b.Put([]byte(owner), binary.BigEndian.AppendUint64(nil, uint64(cur)))
}

// pairKey names a conversation independently of its direction.
func pairKey(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + "\x00" + b
}

// PutFile implements Index.
func (s *DirStore) PutFile(ctx context.Context, f File) error {
	if f.ID == "" || f.Owner == "" {
		return errors.New("files: PutFile: empty ID or owner")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(toRecord(f))
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		old, ok, err := getRecord(tx, f.ID)
		if err != nil {
			return err
		}
		if ok {
			if err := addUsage(tx, old.Owner, -old.Size); err != nil {
				return err
			}
		}
		if err := addUsage(tx, f.Owner, f.Size); err != nil {
			return err
		}
		return tx.Bucket(bucketFiles).Put([]byte(f.ID), data)
	})
}

// File implements Index.
func (s *DirStore) File(ctx context.Context, id string) (File, error) {
	if err := ctx.Err(); err != nil {
		return File{}, err
	}
	var r record
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, ok, err = getRecord(tx, id)
		return err
	})
	if err != nil {
		return File{}, err
	}
	if !ok {
		return File{}, ErrNotFound
	}
	return r.file(), nil
}

// DeleteFile implements Index.
func (s *DirStore) DeleteFile(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		r, ok, err := getRecord(tx, id)
		if err != nil || !ok {
			return err
		}
		if err := addUsage(tx, r.Owner, -r.Size); err != nil {
			return err
		}
		shares, convs := tx.Bucket(bucketShares), tx.Bucket(bucketConvs)
		prefix := []byte(id + "\x00")
		var keys [][]byte
		c := shares.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			pair := k[len(prefix):]
			if err := convs.Delete(append(append(bytes.Clone(pair), 0), id...)); err != nil {
				return err
			}
			if err := shares.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketFiles).Delete([]byte(id))
	})
}

// shareValue is the convs value: 8 bytes of Unix nanoseconds, then the
// sender.
func shareValue(s Share) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(s.At.UnixNano())), s.From...)
}

func parseShareValue(v []byte) (from string, at time.Time, ok bool) {
	if len(v) < 8 {
		return "", time.Time{}, false
	}
	return string(v[8:]), time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), true
}

// AddShare implements Index.
func (s *DirStore) AddShare(ctx context.Context, id string, sh Share) error {
	if sh.From == "" || sh.To == "" {
		return errors.New("files: AddShare: empty sender or recipient")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pair := pairKey(sh.From, sh.To)
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, ok, err := getRecord(tx, id); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		convs := tx.Bucket(bucketConvs)
		key := []byte(pair + "\x00" + id)
		if _, at, ok := parseShareValue(convs.Get(key)); ok && at.After(sh.At) {
			return nil // a later share of the same file is already recorded
		}
		if err := convs.Put(key, shareValue(sh)); err != nil {
			return err
		}
		return tx.Bucket(bucketShares).Put([]byte(id+"\x00"+pair), nil)
	})
}

// Exchanged implements Index.
func (s *DirStore) Exchanged(ctx context.Context, a, b string) ([]File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := []byte(pairKey(a, b) + "\x00")
	var out []File
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketConvs).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r, ok, err := getRecord(tx, string(k[len(prefix):]))
			if err != nil {
				return err
			}
			from, at, vok := parseShareValue(v)
			if !ok || !vok {
				continue
			}
			f := r.file()
			f.SharedBy, f.SharedAt = from, at
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].SharedAt.Equal(out[j].SharedAt) {
			return out[i].SharedAt.After(out[j].SharedAt)
		}
		return out[i].Created.After(out[j].Created)
	})
	return out, nil
}

// Usage implements Index.
func (s *DirStore) Usage(ctx context.Context, owner string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketUsage).Get([]byte(owner)); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	return n, err
}

// Close implements Store.
func (s *DirStore) Close() error { return s.db.Close() }
