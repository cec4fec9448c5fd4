// Command secrets-init-webhook is the admission webhook that injects
// secrets-init into pods whose environment holds secret references
// (SPEC §11; docs/kubernetes.md).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
	"github.com/secrets-init/secrets-init/webhook/decrypt"
	"github.com/secrets-init/secrets-init/webhook/inject"
	"github.com/secrets-init/secrets-init/webhook/kube"
	"github.com/secrets-init/secrets-init/webhook/registry"
	"github.com/secrets-init/secrets-init/webhook/server"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

var version = "dev"

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

type config struct {
	listen, image, pullPolicy, kubeconfig string
	tlsCert, tlsKey                       string
	selfSigned                            bool
	webhookConfig, service, namespace     string
	caSecret                              string
	sans                                  list
	cacheTTL, timeout                     time.Duration
	logLevel                              string
	version                               bool
	decryptSecrets, jweDetect             bool
	concurrency                           int
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var c config
	fs := flag.NewFlagSet("secrets-init-webhook", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", ":8443", "`ADDR` to serve HTTPS on")
	fs.StringVar(&c.image, "image", "", "the secrets-init `IMAGE` of the copy initContainer (by digest when given)")
	fs.StringVar(&c.pullPolicy, "image-pull-policy", "IfNotPresent", "pull policy of the copy initContainer")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig `FILE` (default: in-cluster, else KUBECONFIG)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serving certificate `FILE` (PEM; reloaded when it changes)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "serving key `FILE` (PEM; reloaded when it changes)")
	fs.BoolVar(&c.selfSigned, "tls-self-signed", false, "generate a CA (kept in a Secret) and a serving certificate; patch the webhook configuration's caBundle")
	fs.StringVar(&c.webhookConfig, "webhook-config", "secrets-init-webhook", "`NAME` of the MutatingWebhookConfiguration whose caBundle --tls-self-signed patches")
	fs.StringVar(&c.service, "service", "secrets-init-webhook", "`NAME` of the webhook's Service (for the self-signed certificate)")
	fs.StringVar(&c.namespace, "namespace", "", "the webhook's namespace (default: POD_NAMESPACE, else the service account's)")
	fs.StringVar(&c.caSecret, "tls-ca-secret", "secrets-init-webhook-ca", "`NAME` of the Secret that holds the self-signed CA, shared by the replicas")
	fs.Var(&c.sans, "tls-san", "extra DNS name or IP of the self-signed certificate (repeatable)")
	fs.DurationVar(&c.cacheTTL, "registry-cache-ttl", 5*time.Minute, "how long a tag's image configuration is cached")
	fs.DurationVar(&c.timeout, "timeout", 9*time.Second, "deadline of one admission review")
	fs.BoolVar(&c.decryptSecrets, "decrypt-secrets", false, "serve POST /secrets: decrypt the jwe: values of Secrets labelled secrets-init.io/decrypt: jwe")
	fs.BoolVar(&c.jweDetect, "jwe-detect", false, "a bare JWE value is a jwe: reference (in pods' env, and in Secrets for /secrets)")
	fs.IntVar(&c.concurrency, "concurrency", 8, "KMS calls in flight at once for one Secret (/secrets)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.version {
		fmt.Println("secrets-init-webhook", version)
		return 0
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "secrets-init-webhook: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := serve(c, log); err != nil {
		log.Error("exiting", "error", err.Error())
		return 1
	}
	return 0
}

func serve(c config, log *slog.Logger) error {
	switch {
	case c.image == "":
		return errors.New("--image is required")
	case c.concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	case c.selfSigned && (c.tlsCert != "" || c.tlsKey != ""):
		return errors.New("--tls-self-signed and --tls-cert/--tls-key exclude each other")
	case !c.selfSigned && (c.tlsCert == "" || c.tlsKey == ""):
		return errors.New("give --tls-cert and --tls-key, or --tls-self-signed")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	rc, err := kube.Config(c.kubeconfig)
	if err != nil {
		return fmt.Errorf("API access: %v", err)
	}
	rc.UserAgent = "secrets-init-webhook/" + version
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	metrics := server.NewMetrics()
	res := &registry.Resolver{TTL: c.cacheTTL, Count: func(r string) {
		metrics.Add("secrets_init_webhook_registry_lookups_total", `result="`+r+`"`)
	}}
	ecr, acr := &registry.ECR{Log: log}, &registry.ACR{Log: log}
	cloud := registry.CloudKeychains(ecr, acr)
	// The instance metadata probes run now, not in a pod's admission;
	// /readyz waits for them.
	ecr.Warm()
	acr.Warm()
	inj := &inject.Injector{
		Image:           c.image,
		ImagePullPolicy: corev1.PullPolicy(c.pullPolicy),
		Objects:         kube.Client{Interface: client},
		Entrypoints: &registry.Pods{Resolver: res, Objects: kube.Registry{Interface: client},
			Cloud: cloud},
		ValidateFlags: inject.ValidateFlags,
		DetectJWE:     c.jweDetect,
		Forbidden: func(kind, ns, name string) {
			metrics.Add("secrets_init_webhook_forbidden_total", `kind="`+kind+`"`)
			log.Warn("not allowed to read; its values are not inspected", "kind", kind, "namespace", ns, "name", name)
		},
	}

	var ready atomic.Bool
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.selfSigned {
		cert, err := selfSigned(ctx, c, client, log, &ready)
		if err != nil {
			return err
		}
		tlsConf.Certificates = []tls.Certificate{*cert}
	} else {
		files := &server.CertFiles{Cert: c.tlsCert, Key: c.tlsKey, Log: log, Metrics: metrics}
		if _, err := files.Load(); err != nil {
			return fmt.Errorf("serving certificate: %v", err)
		}
		tlsConf.GetCertificate = files.GetCertificate
		ready.Store(true)
	}

	mux := http.NewServeMux()
	mux.Handle("/mutate", &server.Handler{Injector: inj, Metrics: metrics, Log: log, Timeout: c.timeout})
	if c.decryptSecrets {
		mux.Handle("/secrets", &server.SecretsHandler{Metrics: metrics, Log: log, Timeout: c.timeout, Decrypter: &decrypt.Decrypter{
			Open:      jwe.Open,
			Settings:  provider.Settings{Log: log, Limit: provider.NewLimiter(c.concurrency)},
			DetectJWE: c.jweDetect,
		}})
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// Not ready while the first instance metadata probes run (10s at most):
	// a replica takes no pod before it knows its cloud credentials.
	mux.Handle("/readyz", server.Readiness{
		{Ready: ready.Load, Waiting: "the caBundle is not patched yet"},
		{Ready: ecr.Ready, Waiting: "the AWS instance role probe is running"},
		{Ready: acr.Ready, Waiting: "the Azure managed identity probe is running"},
	})
	mux.Handle("/metrics", metrics)
	srv := &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "version", version, "image", c.image, "decryptSecrets", c.decryptSecrets)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// selfSigned gets the CA shared by the replicas (creating it in a Secret
// the first time), issues this replica's serving certificate, and patches
// the caBundle in the background until it succeeds.
func selfSigned(ctx context.Context, c config, client kubernetes.Interface, log *slog.Logger, ready *atomic.Bool) (*tls.Certificate, error) {
	ns := c.namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		b, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		ns = strings.TrimSpace(string(b))
	}
	if ns == "" {
		return nil, errors.New("--tls-self-signed needs --namespace (or POD_NAMESPACE)")
	}
	ca, err := sharedCA(ctx, client, ns, c.caSecret)
	if err != nil {
		return nil, fmt.Errorf("self-signed CA in Secret %s/%s: %v", ns, c.caSecret, err)
	}
	names := []string{c.service + "." + ns + ".svc", c.service + "." + ns + ".svc.cluster.local", c.service + "." + ns, c.service}
	cert, err := ca.Issue(append(names, c.sans...))
	if err != nil {
		return nil, err
	}
	// The caBundle is kept in place: checked every 30s, and patched again
	// if the configuration was recreated or overwritten.
	go func() {
		for {
			patched, err := kube.PatchCABundle(ctx, client, c.webhookConfig, ca.CertPEM)
			wait := 30 * time.Second
			switch {
			case err != nil:
				log.Warn("cannot patch the caBundle yet", "webhookConfiguration", c.webhookConfig, "error", err.Error())
				wait = 5 * time.Second
			case patched:
				log.Info("caBundle patched", "webhookConfiguration", c.webhookConfig)
			}
			if err == nil {
				ready.Store(true)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	return cert, nil
}

func sharedCA(ctx context.Context, client kubernetes.Interface, ns, name string) (*server.CA, error) {
	secrets := client.CoreV1().Secrets(ns)
	for range 3 {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return &server.CA{CertPEM: s.Data["ca.crt"], KeyPEM: s.Data["ca.key"]}, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		ca, err := server.NewCA()
		if err != nil {
			return nil, err
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "secrets-init-webhook"}},
			Data:       map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": ca.KeyPEM},
		}, metav1.CreateOptions{})
		if err == nil {
			return ca, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		// Another replica created it first: read it.
	}
	return nil, errors.New("the Secret keeps changing")
}
