package files

import (
	"context"
	"io"
	"time"
)

// File is the record Parley keeps for one uploaded file.
type File struct {
	// ID names the file in URLs and in the Store: 32 characters of
	// lower-case base32 over 160 random bits.
	ID string
	// Owner is the uploader's bare JID.
	Owner string
	// Name is the sanitised file name (see SanitizeName).
	Name string
	// Size is the length in bytes.
	Size int64
	// ContentType is the media type the uploader declared, or one guessed
	// from the extension. It is informational only: what a browser is
	// told when the file is served is decided from the bytes.
	ContentType string
	// SHA256 is the hex digest of the content, computed while it streamed
	// in.
	SHA256 string
	// Created is when the upload completed.
	Created time.Time

	// SharedBy and SharedAt are set only in Exchanged results: who last
	// sent the file in the conversation asked about, and when.
	SharedBy string
	SharedAt time.Time
}

// Share records that a file was sent in a one-to-one conversation.
type Share struct {
	// From and To are the sender's and the recipient's bare JIDs.
	From, To string
	At       time.Time
}

// Blobs holds file contents by ID. IDs are chosen by Parley: ASCII letters,
// digits, '-', '_' and '.', never starting with a dot, at most 128 bytes.
// A thumbnail is kept as its own blob, under the file's ID plus ".thumb".
type Blobs interface {
	// Put stores everything r yields under id, replacing what was there,
	// and returns the number of bytes written. The content must not become
	// visible under id before it is complete: a failed or cancelled Put
	// leaves the old content, or nothing.
	Put(ctx context.Context, id string, r io.Reader) (int64, error)
	// Open returns the content and its size, or ErrNotFound.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, int64, error)
	// Delete removes the content; a missing blob is not an error.
	Delete(ctx context.Context, id string) error
}

// Index holds the File records and the conversations each was shared in.
// Owners and peers are normalised bare JIDs, compared byte for byte.
type Index interface {
	// PutFile creates or replaces the record for f.ID and keeps the
	// owner's usage in step.
	PutFile(ctx context.Context, f File) error
	// File returns the record, or ErrNotFound.
	File(ctx context.Context, id string) (File, error)
	// DeleteFile removes the record, its usage and its shares; a missing
	// record is not an error.
	DeleteFile(ctx context.Context, id string) error
	// AddShare records that file id was sent from s.From to s.To at s.At.
	// Sharing the same file again in the same conversation only moves its
	// time. It returns ErrNotFound when there is no such file.
	AddShare(ctx context.Context, id string, s Share) error
	// Exchanged returns the files shared between a and b, in either
	// direction, newest share first, with SharedBy and SharedAt set.
	Exchanged(ctx context.Context, a, b string) ([]File, error)
	// Usage returns the total size of owner's files.
	Usage(ctx context.Context, owner string) (int64, error)
}

// Store is where the Service keeps files and their records. Every method
// is safe for concurrent use and returns only once its write is durable.
// DirStore is the default; a host with its own object store implements
// this interface instead.
type Store interface {
	Blobs
	Index
	// Close releases the store.
	Close() error
}
