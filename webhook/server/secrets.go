package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/secrets-init/secrets-init/webhook/decrypt"
	"github.com/secrets-init/secrets-init/webhook/inject"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretsHandler answers AdmissionReviews for Secrets (POST /secrets): the
// jwe: values of a Secret labelled secrets-init.io/decrypt: jwe are
// replaced by their plaintext, on CREATE and UPDATE.
type SecretsHandler struct {
	Decrypter *decrypt.Decrypter
	Metrics   *Metrics
	Log       *slog.Logger
	Timeout   time.Duration // bounds one review (the KMS calls)
}

// ServeHTTP is POST /secrets.
func (h *SecretsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveReview(w, r, h.Timeout, func() { h.Metrics.IncSecret("invalid") }, h.Review)
}

// Review answers one AdmissionReview for a Secret.
func (h *SecretsHandler) Review(ctx context.Context, body []byte) (*admissionv1.AdmissionReview, error) {
	req, out, err := decodeReview(body)
	if err != nil {
		return nil, err
	}
	resp := out.Response
	log := slog.New(slog.DiscardHandler)
	if h.Log != nil {
		log = h.Log
	}
	log = log.With("uid", string(req.UID), "namespace", req.Namespace, "name", req.Name)
	if req.Kind.Kind != "Secret" || req.Kind.Group != "" || req.SubResource != "" ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		h.Metrics.IncSecret("ignored")
		return out, nil
	}
	refuse := func(code int32, msg string) (*admissionv1.AdmissionReview, error) {
		h.Metrics.IncSecret("denied")
		log.Warn("Secret denied", "reason", msg)
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReasonForbidden,
			Message: "secrets-init-webhook: " + msg}
		return out, nil
	}
	var s corev1.Secret
	if err := json.Unmarshal(req.Object.Raw, &s); err != nil {
		// The decoder's message may quote the object: it is not repeated.
		return refuse(http.StatusBadRequest, "cannot decode the Secret "+req.Namespace+"/"+req.Name)
	}
	if !decrypt.Labelled(&s) {
		h.Metrics.IncSecret("skipped")
		log.Debug("Secret admitted unchanged", "why", "not labelled "+decrypt.Label+": "+decrypt.LabelValue)
		return out, nil
	}
	if s.Namespace == "" {
		s.Namespace = req.Namespace
	}
	var old *corev1.Secret
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old = new(corev1.Secret)
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return refuse(http.StatusBadRequest, "cannot decode the stored Secret "+req.Namespace+"/"+req.Name)
		}
	}
	ops, err := h.Decrypter.Patch(ctx, &s, old)
	if err != nil {
		var d *decrypt.DenyError
		if !errors.As(err, &d) {
			return refuse(http.StatusInternalServerError, err.Error())
		}
		return refuse(http.StatusForbidden, err.Error())
	}
	if len(ops) == 0 {
		h.Metrics.IncSecret("skipped")
		log.Debug("Secret admitted unchanged", "why", "no jwe: value")
		return out, nil
	}
	patch, err := inject.MarshalPatch(ops)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(ops))
	for i, op := range ops {
		keys[i] = op.Path
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	h.Metrics.IncSecret("decrypted")
	log.Info("Secret decrypted", "values", keys)
	return out, nil
}
