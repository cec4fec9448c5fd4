package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
)

// Objects reads pull secrets and service accounts. A missing object is
// (nil, nil): the kubelet skips a missing pull secret too.
type Objects interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
}

// Pods finds the entrypoints of a pod's images with the pod's credentials.
type Pods struct {
	Resolver *Resolver
	Objects  Objects
	// Cloud are the keychains tried after the pull secrets (the cloud
	// registries' own credentials), before anonymous access.
	Cloud []authn.Keychain
}

// Platform is the pod's platform: its kubernetes.io/os and
// kubernetes.io/arch node selector, else linux/amd64.
func Platform(pod *corev1.Pod) v1.Platform {
	p := DefaultPlatform
	if os := pod.Spec.NodeSelector[corev1.LabelOSStable]; os != "" {
		p.OS = os
	}
	if arch := pod.Spec.NodeSelector[corev1.LabelArchStable]; arch != "" {
		p.Architecture = arch
	}
	return p
}

// Entrypoint implements inject.Entrypoints. Every pull secret of the pod
// and of its service account is tried in turn (as the kubelet does), then
// the cloud keychains and anonymous access.
func (p *Pods) Entrypoint(ctx context.Context, pod *corev1.Pod, image string) ([]string, []string, error) {
	if image == "" {
		return nil, nil, ErrNoImage
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, nil, fmt.Errorf("not an image reference: %v", err)
	}
	chains, err := p.keychains(ctx, pod, ref)
	if err != nil {
		return nil, nil, err
	}
	platform := Platform(pod)
	var last error
	for _, kc := range chains {
		c, err := p.Resolver.Lookup(ctx, image, platform, kc)
		if err == nil {
			return c.Entrypoint, c.Cmd, nil
		}
		last = err
		if !authError(err) {
			break
		}
	}
	return nil, nil, last
}

// keychains lists the credentials to try for ref: one keychain per pull
// secret that has an entry for ref's registry, then the cloud keychains
// with anonymous access.
func (p *Pods) keychains(ctx context.Context, pod *corev1.Pod, ref name.Reference) ([]authn.Keychain, error) {
	var names []string
	for _, s := range pod.Spec.ImagePullSecrets {
		names = append(names, s.Name)
	}
	if p.Objects != nil {
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		acct, err := p.Objects.ServiceAccount(ctx, pod.Namespace, sa)
		if err != nil {
			return nil, fmt.Errorf("cannot read service account %s/%s: %v", pod.Namespace, sa, err)
		}
		if acct != nil {
			for _, s := range acct.ImagePullSecrets {
				names = append(names, s.Name)
			}
		}
	}
	var chains []authn.Keychain
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] || p.Objects == nil {
			continue
		}
		seen[n] = true
		s, err := p.Objects.Secret(ctx, pod.Namespace, n)
		if err != nil {
			return nil, fmt.Errorf("cannot read pull secret %s/%s: %v", pod.Namespace, n, err)
		}
		if s == nil {
			continue
		}
		kc, err := kauth.NewFromPullSecrets(ctx, []corev1.Secret{*s})
		if err != nil {
			return nil, fmt.Errorf("pull secret %s/%s: %v", pod.Namespace, n, err)
		}
		if a, err := kc.Resolve(ref.Context()); err == nil && a != authn.Anonymous {
			chains = append(chains, kc)
		}
	}
	return append(chains, authn.NewMultiKeychain(p.Cloud...)), nil
}

// authError reports whether err is a registry's refusal of the
// credentials, after which the next credentials are worth trying.
func authError(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden
	}
	return false
}
