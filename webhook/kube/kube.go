// Package kube reads what the webhook needs from the API server with
// client-go: Secrets, ConfigMaps, ServiceAccounts, and the caBundle of its
// MutatingWebhookConfiguration.
package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/secrets-init/secrets-init/webhook/inject"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is the in-cluster configuration, or kubeconfig's (a file, or
// KUBECONFIG when empty) outside a cluster or when one is named.
func Config(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// Client adapts a clientset to the inject and registry packages.
type Client struct{ kubernetes.Interface }

// Secret implements inject.Objects.
func (c Client) Secret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	s, err := c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, sort(err)
	}
	return s.Data, nil
}

// ConfigMap implements inject.Objects.
func (c Client) ConfigMap(ctx context.Context, ns, name string) (map[string]string, error) {
	m, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, sort(err)
	}
	return m.Data, nil
}

func sort(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%v: %w", err, inject.ErrNotFound)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%v: %w", err, inject.ErrForbidden)
	}
	return err
}

// Registry adapts a clientset to registry.Objects: a missing object is nil.
type Registry struct{ kubernetes.Interface }

// Secret implements registry.Objects.
func (c Registry) Secret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	s, err := c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

// ServiceAccount implements registry.Objects.
func (c Registry) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	s, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return s, err
}

// PatchCABundle sets the caBundle of every webhook of the named
// MutatingWebhookConfiguration that does not hold caPEM yet; patched
// reports whether it had to.
func PatchCABundle(ctx context.Context, c kubernetes.Interface, name string, caPEM []byte) (patched bool, _ error) {
	mwc, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	if len(mwc.Webhooks) == 0 {
		return false, fmt.Errorf("MutatingWebhookConfiguration %s has no webhooks", name)
	}
	var ops []map[string]any
	for i, w := range mwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, caPEM) {
			ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": caPEM})
		}
	}
	if len(ops) == 0 {
		return false, nil
	}
	// The test op makes the patch fail if the list changed since the Get.
	ops = append([]map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": mwc.ResourceVersion}}, ops...)
	patch, _ := json.Marshal(ops)
	_, err = c.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{})
	return err == nil, err
}
