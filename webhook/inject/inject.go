// Package inject decides whether a pod needs secrets-init and computes the
// JSON patch that injects it (SPEC §11). It talks to nothing: Secrets and
// ConfigMaps come through Objects, image entrypoints through Entrypoints.
package inject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/secrets-init/secrets-init/provider"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Annotations and names of the mutation.
const (
	AnnotationInject     = "secrets-init.io/inject"      // "false": skip the pod
	AnnotationInjected   = "secrets-init.io/injected"    // set to "true" on a mutated pod
	AnnotationFlags      = "secrets-init.io/flags"       // secrets-init flags for every wrapped container
	AnnotationWrapProbes = "secrets-init.io/wrap-probes" // "true": wrap exec probes too

	VolumeName    = "secrets-init-bin"
	CopyContainer = "secrets-init-copy"
	MountPath     = "/secrets-init/bin"
	Binary        = MountPath + "/secrets-init"
	// ImageBinary is the path of secrets-init in its own image.
	ImageBinary = "/secrets-init"
)

// VolumeSizeLimit bounds the in-memory volume that holds the binary (the
// release binary is about 21 MB).
var VolumeSizeLimit = resource.MustParse("64Mi")

// ErrForbidden is what Objects returns (wrapped) when RBAC does not let the
// webhook read a Secret or ConfigMap; such a source is not inspected.
var ErrForbidden = errors.New("forbidden")

// ErrNotFound is what Objects returns (wrapped) for a missing object; the
// kubelet reports missing sources itself, so they hold no reference.
var ErrNotFound = errors.New("not found")

// Objects reads the data of Secrets and ConfigMaps in the pod's namespace.
type Objects interface {
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
	ConfigMap(ctx context.Context, namespace, name string) (map[string]string, error)
}

// Entrypoints finds an image's ENTRYPOINT and CMD for the pod's platform.
type Entrypoints interface {
	Entrypoint(ctx context.Context, pod *corev1.Pod, image string) (entrypoint, cmd []string, err error)
}

// Injector computes mutations.
type Injector struct {
	Image           string // the secrets-init image (by digest when given)
	ImagePullPolicy corev1.PullPolicy
	Objects         Objects
	Entrypoints     Entrypoints
	// ValidateFlags checks the secrets-init.io/flags annotation.
	ValidateFlags func(args []string) error
	// Forbidden is called once per source the webhook may not read.
	Forbidden func(kind, namespace, name string)
	// DetectJWE (--jwe-detect) makes a bare JWE value a reference, as
	// SECRETS_INIT_JWE_DETECT=1 does for secrets-init.
	DetectJWE bool
}

// A DenyError is a reason to refuse the pod; its message names the container
// and the cause, never a secret value.
type DenyError struct{ Msg string }

func (e *DenyError) Error() string { return e.Msg }

func deny(format string, a ...any) error { return &DenyError{Msg: fmt.Sprintf(format, a...)} }

// Op is one RFC 6902 operation.
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Result is the outcome for one pod.
type Result struct {
	Patch   []Op     // empty: admit unchanged
	Skipped string   // why the pod was not mutated, when it was not
	Wrapped []string // the containers wrapped by this call
}

// Mutate returns the patch for pod. The error is a *DenyError for a pod that
// must be refused, or another error when the webhook itself failed.
func (in *Injector) Mutate(ctx context.Context, pod *corev1.Pod) (Result, error) {
	ann := pod.Annotations
	if strings.EqualFold(ann[AnnotationInject], "false") {
		return Result{Skipped: AnnotationInject + `: "false"`}, nil
	}
	flags := strings.Fields(ann[AnnotationFlags])
	if in.ValidateFlags != nil {
		if err := in.ValidateFlags(flags); err != nil {
			return Result{}, deny("annotation %s: %v", AnnotationFlags, err)
		}
	}
	wrapProbes := ann[AnnotationWrapProbes] == "true"

	type target struct {
		init  bool
		index int
		c     *corev1.Container
	}
	var targets []target
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name == CopyContainer {
			continue
		}
		has, err := in.hasReferences(ctx, pod.Namespace, c)
		if err != nil {
			return Result{}, err
		}
		if has && !wrapped(c) {
			targets = append(targets, target{true, i, c})
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		has, err := in.hasReferences(ctx, pod.Namespace, c)
		if err != nil {
			return Result{}, err
		}
		if has && !wrapped(c) {
			targets = append(targets, target{false, i, c})
		}
	}
	if len(targets) == 0 {
		if hasCopy(pod) {
			return Result{Skipped: "already injected"}, nil
		}
		return Result{Skipped: "no references"}, nil
	}

	var res Result
	// Containers first, by their indices in the pod as it is; the copy
	// initContainer is inserted last so that no index shifts under them.
	for _, t := range targets {
		orig, err := in.original(ctx, pod, t.c)
		if err != nil {
			return Result{}, err
		}
		base := "/spec/containers/" + strconv.Itoa(t.index)
		if t.init {
			base = "/spec/initContainers/" + strconv.Itoa(t.index)
		}
		res.Patch = append(res.Patch,
			Op{"add", base + "/command", []string{Binary}},
			Op{"add", base + "/args", wrapArgs(flags, orig)},
		)
		mount := corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true}
		if !hasMount(t.c) {
			if len(t.c.VolumeMounts) == 0 {
				res.Patch = append(res.Patch, Op{"add", base + "/volumeMounts", []corev1.VolumeMount{mount}})
			} else {
				res.Patch = append(res.Patch, Op{"add", base + "/volumeMounts/-", mount})
			}
		}
		if wrapProbes {
			for _, p := range []struct {
				name string
				p    *corev1.Probe
			}{{"livenessProbe", t.c.LivenessProbe}, {"readinessProbe", t.c.ReadinessProbe}, {"startupProbe", t.c.StartupProbe}} {
				if p.p == nil || p.p.Exec == nil || len(p.p.Exec.Command) == 0 || p.p.Exec.Command[0] == Binary {
					continue
				}
				res.Patch = append(res.Patch, Op{"add", base + "/" + p.name + "/exec/command",
					append([]string{Binary}, wrapArgs(flags, p.p.Exec.Command)...)})
			}
		}
		res.Wrapped = append(res.Wrapped, t.c.Name)
	}
	if !hasVolume(pod) {
		vol := corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: &VolumeSizeLimit}}}
		if len(pod.Spec.Volumes) == 0 {
			res.Patch = append(res.Patch, Op{"add", "/spec/volumes", []corev1.Volume{vol}})
		} else {
			res.Patch = append(res.Patch, Op{"add", "/spec/volumes/-", vol})
		}
	}
	if !hasCopy(pod) {
		cp := in.copyContainer()
		if len(pod.Spec.InitContainers) == 0 {
			res.Patch = append(res.Patch, Op{"add", "/spec/initContainers", []corev1.Container{cp}})
		} else {
			res.Patch = append(res.Patch, Op{"add", "/spec/initContainers/0", cp})
		}
	}
	if pod.Annotations == nil {
		res.Patch = append(res.Patch, Op{"add", "/metadata/annotations", map[string]string{AnnotationInjected: "true"}})
	} else if pod.Annotations[AnnotationInjected] != "true" {
		res.Patch = append(res.Patch, Op{"add", "/metadata/annotations/" + escape(AnnotationInjected), "true"})
	}
	return res, nil
}

// wrapArgs is the argument list of the wrapper: FLAGS -- ORIGINAL...
func wrapArgs(flags, orig []string) []string {
	a := make([]string, 0, len(flags)+1+len(orig))
	a = append(a, flags...)
	a = append(a, "--")
	return append(a, orig...)
}

// original is the command line the container would run without the
// webhook, as the kubelet derives it: command+args when command is set,
// else the image's ENTRYPOINT followed by args, or by its CMD when args is
// empty too.
func (in *Injector) original(ctx context.Context, pod *corev1.Pod, c *corev1.Container) ([]string, error) {
	if len(c.Command) > 0 {
		return append(append([]string{}, c.Command...), c.Args...), nil
	}
	if in.Entrypoints == nil {
		return nil, deny("container %q: no command, and no registry access to read the ENTRYPOINT of image %s", c.Name, c.Image)
	}
	ep, cmd, err := in.Entrypoints.Entrypoint(ctx, pod, c.Image)
	if err != nil {
		return nil, deny("container %q: cannot read the ENTRYPOINT of image %s: %v", c.Name, c.Image, err)
	}
	// The kubelet expands $(VAR) in command and args, never in the image's
	// ENTRYPOINT and CMD: moved into args, those are escaped ($$ is $).
	orig := escapeAll(ep)
	if len(c.Args) > 0 {
		orig = append(orig, c.Args...)
	} else {
		orig = append(orig, escapeAll(cmd)...)
	}
	if len(orig) == 0 {
		return nil, deny("container %q: image %s has neither ENTRYPOINT nor CMD, and the container sets no command", c.Name, c.Image)
	}
	return orig, nil
}

// jweDetectEnv is secrets-init's SECRETS_INIT_JWE_DETECT: a container that
// sets it has its bare JWE values decrypted, so they count as references.
const jweDetectEnv = "SECRETS_INIT_JWE_DETECT"

// hasReferences reports whether c's environment holds a reference: a
// literal value, or a Secret or ConfigMap value it imports.
func (in *Injector) hasReferences(ctx context.Context, ns string, c *corev1.Container) (bool, error) {
	found := false
	detect := in.DetectJWE
	for _, e := range c.Env {
		if e.Name == jweDetectEnv && e.ValueFrom == nil {
			detect = detect || e.Value == "1" || strings.EqualFold(e.Value, "true")
		}
	}
	check := func(where, v string) error {
		_, ok, err := provider.Parse(v)
		if !ok && detect {
			_, ok, err = provider.ParseBare(v)
		}
		if err != nil {
			return deny("container %q: %s: malformed reference: %v", c.Name, where, err)
		}
		found = found || ok
		return nil
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			if err := check("env "+e.Name, e.Value); err != nil {
				return false, err
			}
			continue
		}
		switch {
		case e.ValueFrom.SecretKeyRef != nil && in.Objects != nil:
			r := e.ValueFrom.SecretKeyRef
			data, err := in.Objects.Secret(ctx, ns, r.Name)
			if skip, err := in.lookupErr(c, "Secret", ns, r.Name, err); skip || err != nil {
				if err != nil {
					return false, err
				}
				continue
			}
			if v, ok := data[r.Key]; ok {
				if err := check(fmt.Sprintf("env %s (Secret %s, key %s)", e.Name, r.Name, r.Key), string(v)); err != nil {
					return false, err
				}
			}
		case e.ValueFrom.ConfigMapKeyRef != nil && in.Objects != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			data, err := in.Objects.ConfigMap(ctx, ns, r.Name)
			if skip, err := in.lookupErr(c, "ConfigMap", ns, r.Name, err); skip || err != nil {
				if err != nil {
					return false, err
				}
				continue
			}
			if v, ok := data[r.Key]; ok {
				if err := check(fmt.Sprintf("env %s (ConfigMap %s, key %s)", e.Name, r.Name, r.Key), v); err != nil {
					return false, err
				}
			}
		}
	}
	if in.Objects == nil {
		return found, nil
	}
	for _, src := range c.EnvFrom {
		var kind, name string
		values := map[string]string{}
		switch {
		case src.SecretRef != nil:
			kind, name = "Secret", src.SecretRef.Name
			data, err := in.Objects.Secret(ctx, ns, name)
			if skip, err := in.lookupErr(c, kind, ns, name, err); skip || err != nil {
				if err != nil {
					return false, err
				}
				continue
			}
			for k, v := range data {
				values[k] = string(v)
			}
		case src.ConfigMapRef != nil:
			kind, name = "ConfigMap", src.ConfigMapRef.Name
			data, err := in.Objects.ConfigMap(ctx, ns, name)
			if skip, err := in.lookupErr(c, kind, ns, name, err); skip || err != nil {
				if err != nil {
					return false, err
				}
				continue
			}
			values = data
		default:
			continue
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := check(fmt.Sprintf("envFrom %s %s, key %s", kind, name, k), values[k]); err != nil {
				return false, err
			}
		}
	}
	return found, nil
}

// lookupErr sorts the error of reading a Secret or ConfigMap: a missing
// object or one RBAC hides is skipped, anything else denies the pod.
func (in *Injector) lookupErr(c *corev1.Container, kind, ns, name string, err error) (skip bool, _ error) {
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, ErrNotFound):
		return true, nil
	case errors.Is(err, ErrForbidden):
		if in.Forbidden != nil {
			in.Forbidden(kind, ns, name)
		}
		return true, nil
	}
	return false, deny("container %q: cannot read %s %s/%s: %v", c.Name, kind, ns, name, err)
}

func (in *Injector) copyContainer() corev1.Container {
	no, yes := false, true
	uid := int64(65534)
	policy := in.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
	}
	return corev1.Container{
		Name:            CopyContainer,
		Image:           in.Image,
		ImagePullPolicy: policy,
		Command:         []string{ImageBinary},
		Args:            []string{"copy", MountPath},
		VolumeMounts:    []corev1.VolumeMount{{Name: VolumeName, MountPath: MountPath}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			// The copy lands in a memory-backed volume, which is charged
			// to this container while it writes.
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &yes,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

func wrapped(c *corev1.Container) bool { return len(c.Command) > 0 && c.Command[0] == Binary }

func hasMount(c *corev1.Container) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == VolumeName {
			return true
		}
	}
	return false
}

func hasVolume(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeName {
			return true
		}
	}
	return false
}

func hasCopy(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == CopyContainer {
			return true
		}
	}
	return false
}

func escapeAll(a []string) []string {
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = strings.ReplaceAll(s, "$", "$$")
	}
	return out
}

// escape makes s one JSON Pointer token.
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// MarshalPatch encodes ops as a JSON patch.
func MarshalPatch(ops []Op) ([]byte, error) { return json.Marshal(ops) }
