// Package server serves the webhook's endpoints: POST /mutate, POST
// /secrets, /healthz, /readyz and /metrics.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/secrets-init/secrets-init/webhook/inject"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxBody bounds an AdmissionReview (the API server sends at most 3 MiB
// objects; a review holds one).
const maxBody = 8 << 20

// Handler answers AdmissionReviews for Pods.
type Handler struct {
	Injector *inject.Injector
	Metrics  *Metrics
	Log      *slog.Logger
	// Timeout bounds one review (registry lookups included); the API
	// server's own timeoutSeconds is at most 10.
	Timeout time.Duration
}

// ServeHTTP is POST /mutate.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveReview(w, r, h.Timeout, func() { h.Metrics.Inc("invalid") }, h.Review)
}

// serveReview reads an AdmissionReview from r, answers it with review
// under timeout, and writes the answer; invalid counts a request that is
// not an AdmissionReview.
func serveReview(w http.ResponseWriter, r *http.Request, timeout time.Duration, invalid func(),
	review func(context.Context, []byte) (*admissionv1.AdmissionReview, error)) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "cannot read the request body", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out, err := review(ctx, body)
	if err != nil {
		invalid()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// decodeReview reads an AdmissionReview and prepares its allowing answer.
func decodeReview(body []byte) (*admissionv1.AdmissionRequest, *admissionv1.AdmissionReview, error) {
	var in admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, nil, fmt.Errorf("not an AdmissionReview: %v", err)
	}
	if in.Request == nil {
		return nil, nil, errors.New("AdmissionReview without a request")
	}
	out := &admissionv1.AdmissionReview{TypeMeta: in.TypeMeta, Response: &admissionv1.AdmissionResponse{UID: in.Request.UID, Allowed: true}}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	return in.Request, out, nil
}

// Review answers one AdmissionReview. The error is for a request that is
// not a v1 AdmissionReview at all.
func (h *Handler) Review(ctx context.Context, body []byte) (*admissionv1.AdmissionReview, error) {
	req, out, err := decodeReview(body)
	if err != nil {
		return nil, err
	}
	resp := out.Response
	log := h.logger().With("uid", string(req.UID), "namespace", req.Namespace, "name", req.Name)

	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.SubResource != "" || req.Operation != admissionv1.Create {
		h.Metrics.Inc("ignored")
		return out, nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		h.Metrics.Inc("denied")
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest,
			Message: "secrets-init-webhook: cannot decode the pod: " + err.Error()}
		return out, nil
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	res, err := h.Injector.Mutate(ctx, &pod)
	if err != nil {
		var d *inject.DenyError
		code := int32(http.StatusForbidden)
		if !errors.As(err, &d) {
			code = http.StatusInternalServerError
		}
		h.Metrics.Inc("denied")
		log.Warn("pod denied", "reason", err.Error())
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReasonForbidden,
			Message: "secrets-init-webhook: " + err.Error()}
		return out, nil
	}
	if len(res.Patch) == 0 {
		h.Metrics.Inc("skipped")
		log.Debug("pod admitted unchanged", "why", res.Skipped)
		return out, nil
	}
	patch, err := inject.MarshalPatch(res.Patch)
	if err != nil {
		return nil, err
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	h.Metrics.Inc("mutated")
	log.Info("pod mutated", "containers", res.Wrapped)
	return out, nil
}

func (h *Handler) logger() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}
