package gcpfake

import (
	"context"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file serves GetSecretVersion, the metadata call refresh uses to see
// which version latest (or an alias) names now without reading a payload,
// and makes the fake mutable as the real service is: Add makes a new
// latest, Alias moves an alias, Delete removes a secret. DenyGet refuses
// GetSecretVersion alone (a caller with secretmanager.versions.access but
// not secretmanager.versions.get); Count counts calls per method. Throttle
// and Deny apply to it as to AccessSecretVersion, and so do Fail (server
// faults) and Hang (an outage that never answers).

// metaState is the Server's GetSecretVersion state, guarded by Server.mu.
type metaState struct {
	gets    int  // GetSecretVersion calls
	denyGet bool // answer GetSecretVersion PermissionDenied
	hang    bool // hold every call until its caller gives up
	fault   codes.Code
	faults  int // calls still to answer with fault; -1: every call
}

// Fail makes the next n calls of either method (n < 0: every call, until
// Fail(codes.OK, 0)) answer code, such as codes.Unavailable or
// codes.Internal (Google's 503 and 500).
func (s *Server) Fail(code codes.Code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta.fault, s.meta.faults = code, n
}

// Hang makes every call of either method wait, unanswered, until its
// caller gives up (on), or serve again (off).
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta.hang = on
}

// arrive holds a call for the fake's latency, then answers it with an
// injected fault, if any (nil: serve it). ctx is the call's.
func (s *Server) arrive(ctx context.Context) error {
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	select {
	case <-time.After(latency):
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	return s.fault(ctx)
}

// throttled takes one of the throttled answers left, if any, for a call
// counted against quota; s.mu is held.
func (s *Server) throttled(quota string) error {
	if s.throttle <= 0 {
		return nil
	}
	s.throttle--
	return status.Errorf(codes.ResourceExhausted, "Quota exceeded for quota metric '%s' of service 'secretmanager.googleapis.com'.", quota)
}

// fault is the error an injected outage answers a call with, after
// holding it as Hang says; nil: serve it. ctx is the call's.
func (s *Server) fault(ctx context.Context) error {
	s.mu.Lock()
	hang := s.meta.hang
	var err error
	if s.meta.faults != 0 && s.meta.fault != codes.OK {
		if s.meta.faults > 0 {
			s.meta.faults--
		}
		err = status.Error(s.meta.fault, "Fault injected by the fake.")
	}
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

// Count returns the number of calls of an RPC method so far
// ("AccessSecretVersion" or "GetSecretVersion").
func (s *Server) Count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "AccessSecretVersion":
		return len(s.requests)
	case "GetSecretVersion":
		return s.meta.gets
	}
	return 0
}

// DenyGet makes GetSecretVersion answer PermissionDenied for every secret
// (on) or serve again (off), as for a caller without
// secretmanager.versions.get; AccessSecretVersion is unaffected.
func (s *Server) DenyGet(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta.denyGet = on
}

// Delete deletes the secret name with all its versions, as DeleteSecret
// does: every later call for it answers NotFound.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.secrets, name)
}

// GetSecretVersion implements the RPC: the version's metadata (its full
// name with the number that latest or an alias resolves to, its state),
// never its payload.
func (s *Server) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s.mu.Lock()
	s.meta.gets++
	s.mu.Unlock()
	if err := s.arrive(ctx); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.throttled("Read requests"); err != nil {
		return nil, err
	}
	i := strings.LastIndex(req.GetName(), "/versions/")
	if i < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "Resource ID [%s] is not in a valid format.", req.GetName())
	}
	name, v := req.GetName()[:i], req.GetName()[i+len("/versions/"):]
	sec, n, err := s.find(req.GetName(), name, v, "secretmanager.versions.get", s.meta.denyGet)
	if err != nil {
		return nil, err
	}
	return &secretmanagerpb.SecretVersion{
		Name:       fmt.Sprintf("%s/versions/%d", name, n),
		State:      sec.versions[n-1].state,
		CreateTime: timestamppb.New(time.Unix(1.7e9, 0).Add(time.Duration(n) * time.Hour)),
	}, nil
}
