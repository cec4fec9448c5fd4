package awsfake

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// This file makes the fake mutable the way rotation changes AWS: a new
// secret version moves AWSCURRENT (and AWSPREVIOUS follows), a parameter
// gets a new version, a secret or parameter is deleted; and it serves
// DescribeSecret, the metadata call refresh uses to see which version is
// current without reading a value. FailOp("DescribeSecret",
// "AccessDeniedException", ...) denies that call alone; Count counts it.

// deletedSecret is a secret scheduled for deletion: DescribeSecret still
// describes it (with a DeletedDate); reading its value is refused.
type deletedSecret struct{}

// Rotate adds v as the new current version of the secret name in region,
// as PutSecretValue does: the new version gets AWSCURRENT (and any other
// stages in v.Stages), the version that had AWSCURRENT gets AWSPREVIOUS,
// and the one that had AWSPREVIOUS loses it. It returns the new version's
// id.
func (s *Server) Rotate(region, name string, v Secret) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{region, name}
	if v.VersionID == "" {
		v.VersionID = fmt.Sprintf("v%d-%08x", len(s.secrets[k])+1, hash(name))
	}
	if !slices.Contains(v.Stages, "AWSCURRENT") {
		v.Stages = append(slices.Clone(v.Stages), "AWSCURRENT")
	}
	for i := range s.secrets[k] {
		old := &s.secrets[k][i]
		wasCurrent := slices.Contains(old.Stages, "AWSCURRENT")
		old.Stages = slices.DeleteFunc(slices.Clone(old.Stages), func(st string) bool {
			return st == "AWSPREVIOUS" || slices.Contains(v.Stages, st)
		})
		if wasCurrent {
			old.Stages = append(old.Stages, "AWSPREVIOUS")
		}
	}
	s.secrets[k] = append(s.secrets[k], v)
	return v.VersionID
}

// DeleteSecret deletes the secret name in region. With force (as
// ForceDeleteWithoutRecovery) it is gone at once: every call answers
// ResourceNotFoundException. Without, it is scheduled for deletion as
// with a recovery window: DescribeSecret answers with a DeletedDate and
// reading its value answers InvalidRequestException.
func (s *Server) DeleteSecret(region, name string, force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{region, name}
	if force {
		delete(s.secrets, k)
		return
	}
	if s.deleted == nil {
		s.deleted = map[key]deletedSecret{}
	}
	s.deleted[k] = deletedSecret{}
}

// DeleteParameter deletes the parameter name in region with all its
// versions.
func (s *Server) DeleteParameter(region, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.params, key{region, name})
}

// deletedError is the error of reading the value of a secret scheduled for
// deletion, or nil. The caller holds s.mu.
func (s *Server) deletedError(region, name string) *apiError {
	if _, ok := s.deleted[key{region, name}]; ok && s.secrets[key{region, name}] != nil {
		return &apiError{"InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion."}
	}
	return nil
}

// secretName resolves a SecretId (a name, an ARN or a partial ARN) in
// region to the stored name. The caller holds s.mu.
func (s *Server) secretName(region, id string) (string, *apiError) {
	notFound := &apiError{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
	name := id
	if strings.HasPrefix(id, "arn:") {
		f := strings.SplitN(id, ":", 7)
		if len(f) < 7 || f[3] != region {
			return "", notFound
		}
		name = f[6]
		if _, ok := s.secrets[key{region, name}]; !ok && len(name) > 7 && name[len(name)-7] == '-' {
			name = name[:len(name)-7]
		}
		if !strings.HasPrefix(SecretARN(region, name), id) {
			return "", notFound
		}
	}
	if e, ok := s.nameFails[name]; ok {
		return "", &e
	}
	if _, ok := s.secrets[key{region, name}]; !ok {
		return "", notFound
	}
	return name, nil
}

// describeSecret answers DescribeSecret: the secret's metadata and its
// VersionIdsToStages, never a value.
func (s *Server) describeSecret(region string, body []byte) (any, *apiError) {
	var in struct{ SecretId string }
	if err := json.Unmarshal(body, &in); err != nil || in.SecretId == "" {
		return nil, &apiError{"InvalidParameterException", "bad request"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name, aerr := s.secretName(region, in.SecretId)
	if aerr != nil {
		return nil, aerr
	}
	stages := map[string][]string{}
	for _, v := range s.secrets[key{region, name}] {
		if len(v.Stages) > 0 {
			stages[v.VersionID] = v.Stages
		}
	}
	out := map[string]any{
		"ARN":                SecretARN(region, name),
		"Name":               name,
		"VersionIdsToStages": stages,
		"LastChangedDate":    1.7e9,
		"CreatedDate":        1.7e9,
	}
	if _, ok := s.deleted[key{region, name}]; ok {
		out["DeletedDate"] = 1.8e9
	}
	return out, nil
}

// Heal ends every injected failure: Hang, FailOp, FailName and throttling,
// so that a fake shared by several tests serves again.
func (s *Server) Heal() {
	s.set(func() {
		s.hang, s.throttles = false, 0
		clear(s.opFails)
		clear(s.nameFails)
	})
}
