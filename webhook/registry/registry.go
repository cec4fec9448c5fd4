// Package registry reads an image's ENTRYPOINT and CMD from its registry
// with go-containerregistry, for a platform, with the pod's pull secrets.
package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Config is what the webhook needs of an image's configuration.
type Config struct {
	Entrypoint, Cmd []string
}

// DefaultPlatform is used when the pod names none.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// maxEntries bounds each cache; past it, an arbitrary entry is dropped.
const maxEntries = 4096

// Resolver looks up image configurations. Configurations are cached by
// digest (a digest names immutable content); a tag's digest is cached for
// TTL. The caches are shared by every pod: a pod that could not pull an
// image itself may still be given its (non-secret) entrypoint, and then
// fails at the kubelet's pull.
type Resolver struct {
	TTL     time.Duration   // how long a tag's digest is trusted (0: not cached)
	Options []remote.Option // extra options (a transport, a user agent)
	Now     func() time.Time
	// Count, when set, is told of every lookup: "hit", "miss" or "error".
	Count func(result string)

	mu      sync.Mutex
	configs map[string]Config // "DIGEST PLATFORM" -> config
	tags    map[string]tagEntry
}

type tagEntry struct {
	digest  string
	expires time.Time
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Resolver) count(result string) {
	if r.Count != nil {
		r.Count(result)
	}
}

// Lookup returns the configuration of image for platform, authenticating
// with kc.
func (r *Resolver) Lookup(ctx context.Context, image string, platform v1.Platform, kc authn.Keychain) (Config, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		r.count("error")
		return Config{}, fmt.Errorf("not an image reference: %v", err)
	}
	plat := platform.OS + "/" + platform.Architecture
	if platform.Variant != "" {
		plat += "/" + platform.Variant
	}
	tagKey := ref.Name() + " " + plat
	digest := ""
	if d, ok := ref.(name.Digest); ok {
		digest = d.DigestStr()
	} else {
		r.mu.Lock()
		if t, ok := r.tags[tagKey]; ok && r.now().Before(t.expires) {
			digest = t.digest
		}
		r.mu.Unlock()
	}
	if digest != "" {
		r.mu.Lock()
		c, ok := r.configs[digest+" "+plat]
		r.mu.Unlock()
		if ok {
			r.count("hit")
			return c, nil
		}
	}
	r.count("miss")
	c, digest, err := r.fetch(ctx, ref, platform, kc)
	if err != nil {
		r.count("error")
		return Config{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.configs == nil {
		r.configs, r.tags = map[string]Config{}, map[string]tagEntry{}
	}
	put(r.configs, digest+" "+plat, c)
	if _, isTag := ref.(name.Tag); isTag && r.TTL > 0 {
		put(r.tags, tagKey, tagEntry{digest: digest, expires: r.now().Add(r.TTL)})
	}
	return c, nil
}

func put[V any](m map[string]V, k string, v V) {
	if _, ok := m[k]; !ok && len(m) >= maxEntries {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = v
}

func (r *Resolver) fetch(ctx context.Context, ref name.Reference, platform v1.Platform, kc authn.Keychain) (Config, string, error) {
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}, r.Options...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return Config{}, "", err
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return Config{}, "", err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return Config{}, "", err
		}
		child, err := choose(m, platform)
		if err != nil {
			return Config{}, "", err
		}
		if img, err = idx.Image(child.Digest); err != nil {
			return Config{}, "", err
		}
	} else if img, err = desc.Image(); err != nil {
		return Config{}, "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Config{}, "", err
	}
	return Config{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd}, desc.Digest.String(), nil
}

// attestation reports whether an index entry is a build attestation
// (BuildKit stores them as unknown/unknown images).
func attestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown"
}

// choose picks the image of an index for platform: same OS and
// architecture, and the same variant when the platform names one.
func choose(m *v1.IndexManifest, platform v1.Platform) (v1.Descriptor, error) {
	var have []string
	for _, d := range m.Manifests {
		if attestation(d) || d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		p := d.Platform
		if p.OS == platform.OS && p.Architecture == platform.Architecture && (platform.Variant == "" || p.Variant == platform.Variant) {
			return d, nil
		}
		s := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		have = append(have, s)
	}
	sort.Strings(have)
	want := platform.OS + "/" + platform.Architecture
	if len(have) == 0 {
		return v1.Descriptor{}, fmt.Errorf("the image index has no image for %s", want)
	}
	return v1.Descriptor{}, fmt.Errorf("the image has no %s variant (it has %s)", want, strings.Join(have, ", "))
}

// ErrNoImage is returned for an empty image name.
var ErrNoImage = errors.New("the container names no image")
