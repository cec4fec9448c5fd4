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
// and Deny apply to it as to AccessSecretVersion.

// metaState is the Server's GetSecretVersion state, guarded by Server.mu.
type metaState struct {
	gets    int  // GetSecretVersion calls
	denyGet bool // answer GetSecretVersion PermissionDenied
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
	latency := s.latency
	s.mu.Unlock()
	select {
	case <-time.After(latency):
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.throttle > 0 {
		s.throttle--
		return nil, status.Error(codes.ResourceExhausted, "Quota exceeded for quota metric 'Read requests' of service 'secretmanager.googleapis.com'.")
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
