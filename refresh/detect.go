// Package refresh keeps the values a command was started with current
// while it runs (SPEC §8): a Loop checks every reference that is not
// pinned about every interval, through one Detector per store, re-reads
// only what changed through the engine (package provider), and then acts
// once per round: restart the command, signal it, or nothing.
//
// Time and chance are injected (Clock, *rand.Rand), so that months of
// rounds run in milliseconds in tests.
package refresh

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/secrets-init/secrets-init/provider"
)

// A Detector tells what version of each target a store holds now, as
// cheaply as the store allows: a metadata call where there is one, else a
// keyed hash of the value. Each store that refresh checks has one; a store
// without one is not checked (see Loop).
type Detector interface {
	// Detect returns one Seen per target, in order. It never returns a
	// value.
	Detect(ctx context.Context, targets []provider.Target) []Seen
	// ByFingerprint reports whether the versions Detect returns are
	// fingerprints of the values (compared with provider's
	// Status.Fingerprint) rather than the store's own version ids
	// (compared with Status.Version).
	ByFingerprint() bool
}

// Seen is what a Detector found for one target.
type Seen struct {
	Version string // the version now: an id, or a fingerprint
	// ByFingerprint: Version is a fingerprint of the value, although the
	// Detector otherwise reports version ids (it read the value instead).
	ByFingerprint bool
	Deleted       bool  // the secret no longer exists
	Unchecked     bool  // it cannot be checked (no versions, and reading it is not safe)
	Err           error // the check failed; never holds a value
}

// Fingerprint is a keyed hash of values, with a key made for this process
// alone: it tells whether a value changed, and nothing else (without the
// key, it is no oracle for guessing the value).
type Fingerprint struct{ key []byte }

// NewFingerprint makes a Fingerprint with a fresh random key.
func NewFingerprint() *Fingerprint {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return &Fingerprint{key: key}
}

// Of returns the fingerprint of a value.
func (f *Fingerprint) Of(value []byte) string {
	m := hmac.New(sha256.New, f.key)
	m.Write(value)
	return "hmac:" + hex.EncodeToString(m.Sum(nil)[:8])
}

// FileDetector checks secretfile: references by a keyed hash of each
// file's content. It costs one read per file and no API call.
type FileDetector struct {
	FP *Fingerprint
}

// Detect reads each file and fingerprints it.
func (d FileDetector) Detect(_ context.Context, targets []provider.Target) []Seen {
	out := make([]Seen, len(targets))
	for i, t := range targets {
		b, err := os.ReadFile(t.Name)
		var pe *fs.PathError
		switch {
		case err == nil:
			out[i].Version = d.FP.Of(b)
		case errors.Is(err, fs.ErrNotExist):
			out[i].Deleted = true
		case errors.As(err, &pe):
			out[i].Err = fmt.Errorf("cannot read file %s: %w", t.Name, pe.Err)
		default:
			out[i].Err = err
		}
	}
	return out
}

// ByFingerprint is true: a file has no version of its own.
func (FileDetector) ByFingerprint() bool { return true }
