package azurefake

// This file makes the fake mutable for refresh's version checks: Put makes
// a new current version (as setting a secret does), Delete deletes a
// secret, Deny refuses an identity, Reads counts reads per secret. Key
// Vault's version check is GetSecret without a version, whose id names
// the current version; Fail injects throttling (429), server faults (500)
// and hangs into it as into any read.

// Reads returns how many authorized reads of the secret name Key Vault has
// answered (or failed): of its current version (GET /secrets/NAME), and of
// a named version (GET /secrets/NAME/VERSION).
func (s *Server) Reads(vault, name string) (current, named int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.reads[hostOf(vault)+"/"+name]; n != nil {
		return n[0], n[1]
	}
	return 0, 0
}

// countRead counts one read of name, of the current version if version is
// empty. The caller holds s.mu.
func (s *Server) countRead(host, name, version string) {
	if s.reads == nil {
		s.reads = map[string]*[2]int{}
	}
	n := s.reads[host+"/"+name]
	if n == nil {
		n = new([2]int)
		s.reads[host+"/"+name] = n
	}
	if version == "" {
		n[0]++
	} else {
		n[1]++
	}
}

// Delete deletes the secret name with all its versions, as DeleteSecret
// does (a soft-deleted secret answers 404 SecretNotFound to reads).
func (s *Server) Delete(vault, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.vaults[hostOf(vault)], name)
}

// Deny makes reads of the secret name (empty: of every secret in the vault)
// answer 403 Forbidden with ForbiddenByRbac, as for an identity without
// the Key Vault Secrets User role.
func (s *Server) Deny(vault, name string) {
	s.Fail(vault, name, Fault{Status: 403, Code: "Forbidden", Inner: "ForbiddenByRbac"})
}

// Clear removes a fault that Fail, Deny or an earlier Clear set for the
// secret name (empty: the vault's own), so that its reads are served again.
func (s *Server) Clear(vault, name string) {
	key := hostOf(vault)
	if name != "" {
		key += "/" + name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, key)
}
