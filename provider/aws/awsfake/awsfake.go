// Package awsfake is an in-process AWS Secrets Manager, SSM Parameter
// Store and KMS for tests, demos and benchmarks. It speaks the AWS JSON 1.1
// protocol (GetSecretValue, BatchGetSecretValue, GetParameter,
// GetParameters; KMS's Decrypt and GetPublicKey with RSA keys) over HTTP, verifies the SigV4 signature of every request
// against the static credentials AccessKeyID and SecretAccessKey, keeps
// its data per signing region, counts calls, and can add latency,
// throttling, errors and hangs. The product never imports it.
package awsfake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The static credentials the fake accepts, and its account.
const (
	AccessKeyID     = "AKIDSECRETSINITFAKE"
	SecretAccessKey = "secrets-init-fake-secret-access-key"
	Account         = "123456789012"
)

// A Secret is one version of a Secrets Manager secret.
type Secret struct {
	String    string   // the SecretString, when Binary is nil
	Binary    []byte   // the SecretBinary
	VersionID string   // default: a new id
	Stages    []string // default: AWSCURRENT; each stage leaves the older versions
}

// A Parameter is one version of an SSM parameter.
type Parameter struct {
	Value  string
	Secure bool     // a SecureString: read without decryption, it is ciphertext
	Labels []string // each label leaves the older versions
}

// A Call is one request the fake received with a valid signature.
type Call struct {
	Op     string // the operation, e.g. "BatchGetSecretValue"
	Region string // the region it was signed for
}

// A Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	secrets   map[key][]Secret    // oldest version first
	params    map[key][]Parameter // version n at index n-1
	keys      map[key]Key         // KMS keys by id
	calls     []Call
	badSigs   int
	inFlight  int
	maxFlight int
	latency   time.Duration
	throttles int
	throttled int     // requests answered ThrottlingException
	rate      float64 // SetRateLimit's requests per second; 0: no limit
	burst     float64
	tokens    float64 // the rate limit's bucket
	refilled  time.Time
	hang      bool
	gate      chan struct{} // Hold's: closed by Release
	held      int
	garble    bool
	opFails   map[string]apiError
	nameFails map[string]apiError
	deleted   map[key]deletedSecret // DeleteSecret's, scheduled for deletion (versions.go)
}

type key struct{ region, name string }

type apiError struct{ Code, Message string }

// New starts a fake; Close it when done.
func New() *Server {
	s := &Server{
		secrets:   map[key][]Secret{},
		params:    map[key][]Parameter{},
		keys:      map[key]Key{},
		opFails:   map[string]apiError{},
		nameFails: map[string]apiError{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Env returns the environment variables that point the AWS SDK at the
// fake with its credentials, and away from any shared file or IMDS. The
// region is the caller's to set.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       SecretAccessKey,
		"AWS_ENDPOINT_URL":            s.URL,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
	}
}

// PutSecret adds a version of the secret name in region and returns the
// secret's ARN.
func (s *Server) PutSecret(region, name string, v Secret) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{region, name}
	if v.VersionID == "" {
		v.VersionID = fmt.Sprintf("v%d-%08x", len(s.secrets[k])+1, hash(name))
	}
	if len(v.Stages) == 0 {
		v.Stages = []string{"AWSCURRENT"}
	}
	for i := range s.secrets[k] {
		old := &s.secrets[k][i]
		old.Stages = slices.DeleteFunc(slices.Clone(old.Stages), func(st string) bool { return slices.Contains(v.Stages, st) })
	}
	s.secrets[k] = append(s.secrets[k], v)
	return SecretARN(region, name)
}

// PutParameter adds a version of the parameter name in region and returns
// its version number.
func (s *Server) PutParameter(region, name string, p Parameter) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{region, name}
	for i := range s.params[k] {
		old := &s.params[k][i]
		old.Labels = slices.DeleteFunc(slices.Clone(old.Labels), func(l string) bool { return slices.Contains(p.Labels, l) })
	}
	s.params[k] = append(s.params[k], p)
	return int64(len(s.params[k]))
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) { s.set(func() { s.latency = d }) }

// Throttle answers the next n requests with ThrottlingException.
func (s *Server) Throttle(n int) { s.set(func() { s.throttles = n }) }

// SetRateLimit answers ThrottlingException to the requests above
// perSecond requests per second, as AWS's per-account API rate limits do:
// a token bucket of burst requests, full at first, refilled at perSecond.
// Every request with a valid signature takes a token (throttled ones take
// none); perSecond 0 removes the limit.
func (s *Server) SetRateLimit(perSecond float64, burst int) {
	s.set(func() {
		s.rate, s.burst, s.tokens, s.refilled = perSecond, float64(burst), float64(burst), time.Now()
	})
}

// Throttled returns the number of requests answered ThrottlingException,
// by Throttle or by the rate limit.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Hold makes the requests with a valid signature wait, before anything
// else happens to them, until Release: a fleet of clients started over a
// while then reaches the fake (and its rate limit) at once.
func (s *Server) Hold() {
	s.set(func() {
		if s.gate == nil {
			s.gate = make(chan struct{})
		}
	})
}

// Held returns the number of requests waiting for Release.
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Release lets the requests that Hold keeps go on, and the later ones
// through.
func (s *Server) Release() {
	s.set(func() {
		if s.gate != nil {
			close(s.gate)
			s.gate, s.held = nil, 0
		}
	})
}

// Hang makes every request wait until its client gives up.
func (s *Server) Hang() { s.set(func() { s.hang = true }) }

// Garble cuts every successful answer in half, leaving invalid JSON.
func (s *Server) Garble() { s.set(func() { s.garble = true }) }

// FailOp answers every call of op ("" for every operation) with the error
// code and message.
func (s *Server) FailOp(op, code, message string) {
	s.set(func() { s.opFails[op] = apiError{code, message} })
}

// FailName answers with the error code and message whenever the secret or
// parameter name (as stored, in any region) is read. BatchGetSecretValue
// reports it as an entry of Errors; GetParameters fails as a whole, as
// AWS does for a denied parameter.
func (s *Server) FailName(name, code, message string) {
	s.set(func() { s.nameFails[name] = apiError{code, message} })
}

// Calls returns the calls received so far with a valid signature.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Count returns the number of calls of op received so far.
func (s *Server) Count(op string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

// MaxInFlight returns the most calls the fake has served at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxFlight
}

// BadSignatures returns the number of requests whose signature did not
// verify.
func (s *Server) BadSignatures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badSigs
}

func (s *Server) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// SecretARN returns the ARN the fake gives the secret name in region.
func SecretARN(region, name string) string {
	return fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-%06x", Partition(region), region, Account, name, hash(name)&0xffffff)
}

// ParameterARN returns the ARN of the parameter name in region.
func ParameterARN(region, name string) string {
	return fmt.Sprintf("arn:%s:ssm:%s:%s:parameter/%s", Partition(region), region, Account, strings.TrimPrefix(name, "/"))
}

// Partition returns the partition of a region.
func Partition(region string) string {
	for _, p := range [][2]string{{"cn-", "aws-cn"}, {"us-gov-", "aws-us-gov"}, {"us-isob-", "aws-iso-b"}, {"us-iso-", "aws-iso"}, {"eu-isoe-", "aws-iso-e"}, {"us-isof-", "aws-iso-f"}} {
		if strings.HasPrefix(region, p[0]) {
			return p[1]
		}
	}
	return "aws"
}

func hash(s string) uint32 {
	sum := sha256.Sum256([]byte(s))
	return uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	service, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	wantService := map[string]string{"secretsmanager": "secretsmanager", "AmazonSSM": "ssm", "TrentService": "kms"}[service]
	region, signedFor, err := verify(r, body)
	if err != nil || signedFor != wantService {
		s.set(func() { s.badSigs++ })
		writeError(w, http.StatusForbidden, apiError{"InvalidSignatureException", fmt.Sprintf("signature check failed: %v (signed for %q, want %q)", err, signedFor, wantService)})
		return
	}

	s.mu.Lock()
	if gate := s.gate; gate != nil {
		s.held++
		s.mu.Unlock()
		select {
		case <-gate:
		case <-r.Context().Done():
			s.set(func() {
				if s.gate == gate {
					s.held--
				}
			})
			return
		}
		s.mu.Lock()
	}
	s.calls = append(s.calls, Call{op, region})
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
	defer s.set(func() { s.inFlight-- })
	latency, hang, garble := s.latency, s.hang, s.garble
	throttled := s.throttles > 0
	if throttled {
		s.throttles--
	} else if s.rate > 0 {
		now := time.Now()
		s.tokens = min(s.burst, s.tokens+now.Sub(s.refilled).Seconds()*s.rate)
		s.refilled = now
		if s.tokens >= 1 {
			s.tokens--
		} else {
			throttled = true
		}
	}
	if throttled {
		s.throttled++
	}
	fail, failed := s.opFails[op]
	if !failed {
		fail, failed = s.opFails[""]
	}
	s.mu.Unlock()

	if hang {
		<-r.Context().Done()
		return
	}
	select {
	case <-time.After(latency):
	case <-r.Context().Done():
		return
	}
	switch {
	case throttled:
		writeError(w, http.StatusBadRequest, apiError{"ThrottlingException", "Rate exceeded"})
		return
	case failed:
		writeError(w, http.StatusBadRequest, fail)
		return
	}

	var out any
	var aerr *apiError
	switch service + "." + op {
	case "secretsmanager.GetSecretValue":
		out, aerr = s.getSecretValue(region, body)
	case "secretsmanager.BatchGetSecretValue":
		out, aerr = s.batchGetSecretValue(region, body)
	case "secretsmanager.DescribeSecret":
		out, aerr = s.describeSecret(region, body)
	case "AmazonSSM.GetParameter":
		out, aerr = s.getParameter(region, body)
	case "AmazonSSM.GetParameters":
		out, aerr = s.getParameters(region, body)
	case "TrentService.Decrypt":
		out, aerr = s.kmsDecrypt(region, body)
	case "TrentService.GetPublicKey":
		out, aerr = s.kmsGetPublicKey(region, body)
	default:
		aerr = &apiError{"UnknownOperationException", "unknown operation " + op}
	}
	if aerr != nil {
		writeError(w, http.StatusBadRequest, *aerr)
		return
	}
	data, _ := json.Marshal(out)
	if garble {
		data = data[:len(data)/2]
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(data)
}

// verify checks the SigV4 signature of r by signing a copy of it again
// with the fake's credentials, and returns the region and service it was
// signed for.
func verify(r *http.Request, body []byte) (region, service string, err error) {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "", "", fmt.Errorf("no SigV4 Authorization header")
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return "", "", fmt.Errorf("malformed credential scope")
	}
	if scope[0] != AccessKeyID {
		return "", "", fmt.Errorf("unknown access key")
	}
	region, service = scope[2], scope[3]
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "", "", fmt.Errorf("bad X-Amz-Date")
	}
	if at.Format("20060102") != scope[1] {
		return "", "", fmt.Errorf("the scope's date is not X-Amz-Date's")
	}

	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return "", "", err
	}
	again.ContentLength = int64(len(body))
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h != "host" && h != "content-length" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		return "", "", err
	}
	if again.Header.Get("Authorization") != auth {
		return region, service, fmt.Errorf("signature mismatch")
	}
	return region, service, nil
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.Code, "message": e.Message})
}

// secretEntry is a SecretValueEntry and a GetSecretValue answer.
type secretEntry struct {
	ARN           string
	Name          string
	VersionId     string
	VersionStages []string
	SecretString  *string `json:",omitempty"`
	SecretBinary  []byte  `json:",omitempty"`
	CreatedDate   float64
}

// findSecret finds the secret id (a name, an ARN or a partial ARN) in
// region, and its version with the stage (default AWSCURRENT) or id.
// The caller holds s.mu.
func (s *Server) findSecret(region, id, stage, versionID string) (*secretEntry, *apiError) {
	name := id
	if strings.HasPrefix(id, "arn:") {
		f := strings.SplitN(id, ":", 7)
		if len(f) < 7 || f[3] != region {
			return nil, &apiError{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
		}
		// A full ARN ends in -SUFFIX; a partial one is the ARN without it.
		name = f[6]
		if _, ok := s.secrets[key{region, name}]; !ok && len(name) > 7 && name[len(name)-7] == '-' {
			name = name[:len(name)-7]
		}
		if !strings.HasPrefix(SecretARN(region, name), id) {
			return nil, &apiError{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
		}
	}
	if e, ok := s.nameFails[name]; ok {
		return nil, &e
	}
	if e := s.deletedError(region, name); e != nil {
		return nil, e
	}
	versions, ok := s.secrets[key{region, name}]
	if !ok {
		return nil, &apiError{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
	}
	if stage == "" && versionID == "" {
		stage = "AWSCURRENT"
	}
	for _, v := range versions {
		if (stage == "" || slices.Contains(v.Stages, stage)) && (versionID == "" || v.VersionID == versionID) {
			e := &secretEntry{ARN: SecretARN(region, name), Name: name, VersionId: v.VersionID, VersionStages: v.Stages, CreatedDate: 1.7e9}
			if v.Binary != nil {
				e.SecretBinary = v.Binary
			} else {
				e.SecretString = &v.String
			}
			return e, nil
		}
	}
	return nil, &apiError{"ResourceNotFoundException", fmt.Sprintf("Secrets Manager can't find the specified secret value for staging label: %s, VersionId: %s", stage, versionID)}
}

func (s *Server) getSecretValue(region string, body []byte) (any, *apiError) {
	var in struct{ SecretId, VersionStage, VersionId string }
	if err := json.Unmarshal(body, &in); err != nil || in.SecretId == "" {
		return nil, &apiError{"InvalidParameterException", "bad request"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.findSecret(region, in.SecretId, in.VersionStage, in.VersionId)
}

func (s *Server) batchGetSecretValue(region string, body []byte) (any, *apiError) {
	var in struct{ SecretIdList []string }
	if err := json.Unmarshal(body, &in); err != nil || len(in.SecretIdList) == 0 {
		return nil, &apiError{"InvalidParameterException", "bad request"}
	}
	if len(in.SecretIdList) > 20 {
		return nil, &apiError{"InvalidParameterException", "SecretIdList holds more than 20 ids"}
	}
	type errorEntry struct{ SecretId, ErrorCode, Message string }
	out := struct {
		SecretValues []*secretEntry
		Errors       []errorEntry
	}{SecretValues: []*secretEntry{}, Errors: []errorEntry{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range in.SecretIdList {
		if e, aerr := s.findSecret(region, id, "", ""); aerr != nil {
			out.Errors = append(out.Errors, errorEntry{id, aerr.Code, aerr.Message})
		} else {
			out.SecretValues = append(out.SecretValues, e)
		}
	}
	return out, nil
}

// paramEntry is an SSM Parameter.
type paramEntry struct {
	Name, Type, Value, ARN, DataType string
	Version                          int64
	Selector                         string `json:",omitempty"`
	LastModifiedDate                 float64
}

// findParam reads name ([ARN or name][:selector]) in region. The caller
// holds s.mu.
func (s *Server) findParam(region, ref string, decrypt bool) (*paramEntry, *apiError) {
	name, sel := ref, ""
	if strings.HasPrefix(ref, "arn:") {
		f := strings.SplitN(ref, ":", 7)
		if len(f) < 6 || f[3] != region || !strings.HasPrefix(f[5], "parameter/") {
			return nil, &apiError{"ParameterNotFound", ""}
		}
		name = strings.TrimPrefix(f[5], "parameter")
		if _, ok := s.params[key{region, name}]; !ok {
			name = name[1:]
		}
		if len(f) == 7 {
			sel = f[6]
		}
	} else {
		name, sel, _ = strings.Cut(ref, ":")
	}
	if e, ok := s.nameFails[name]; ok {
		return nil, &e
	}
	versions, ok := s.params[key{region, name}]
	if !ok {
		return nil, &apiError{"ParameterNotFound", ""}
	}
	n := len(versions)
	if sel != "" {
		n = 0
		if v, err := strconv.Atoi(sel); err == nil {
			n = v
		} else {
			for i, p := range versions {
				if slices.Contains(p.Labels, sel) {
					n = i + 1
				}
			}
		}
		if n < 1 || n > len(versions) {
			return nil, &apiError{"ParameterVersionNotFound", "Systems Manager could not find version " + sel + " of the parameter."}
		}
		sel = ":" + sel
	}
	p := versions[n-1]
	e := &paramEntry{Name: name, Type: "String", Value: p.Value, ARN: ParameterARN(region, name), DataType: "text", Version: int64(n), Selector: sel, LastModifiedDate: 1.7e9}
	if p.Secure {
		e.Type = "SecureString"
		if !decrypt {
			e.Value = "kms-ciphertext"
		}
	}
	return e, nil
}

func (s *Server) getParameter(region string, body []byte) (any, *apiError) {
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Name == "" {
		return nil, &apiError{"ValidationException", "bad request"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, aerr := s.findParam(region, in.Name, in.WithDecryption)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"Parameter": p}, nil
}

func (s *Server) getParameters(region string, body []byte) (any, *apiError) {
	var in struct {
		Names          []string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &in); err != nil || len(in.Names) == 0 {
		return nil, &apiError{"ValidationException", "bad request"}
	}
	if len(in.Names) > 10 {
		return nil, &apiError{"ValidationException", "Names holds more than 10 names"}
	}
	out := struct {
		Parameters        []*paramEntry
		InvalidParameters []string
	}{Parameters: []*paramEntry{}, InvalidParameters: []string{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range in.Names {
		p, aerr := s.findParam(region, n, in.WithDecryption)
		switch {
		case aerr == nil:
			out.Parameters = append(out.Parameters, p)
		case aerr.Code == "ParameterNotFound" || aerr.Code == "ParameterVersionNotFound":
			out.InvalidParameters = append(out.InvalidParameters, n)
		default:
			return nil, aerr
		}
	}
	return out, nil
}
