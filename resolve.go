package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/secrets-init/secrets-init/envfile"
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/signals"
)

// resolve reads the environment and the --env-file files and resolves
// their references; SIGTERM, SIGINT or SIGHUP on sigs abort it. A non-zero
// code means there is nothing to report or run: it is the exit status
// (128+N for an abort), already explained on stderr. Other signals that
// come meanwhile have no child to go to.
func resolve(o *options.Options, log *slog.Logger, sigs chan os.Signal, dryRun bool) (*provider.Resolution, int, error) {
	environ, err := environment(o.EnvFiles)
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", err)
		return nil, exitFailed, nil
	}
	detectJWE, err := provider.DetectJWE(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", err)
		return nil, exitFailed, nil
	}
	if code := refreshUsage(environ, o.Skip); code != 0 {
		return nil, code, nil
	}
	keepVaultToken(o, log, dryRun)
	stores, closer := openStores(o, log)
	if closer != nil {
		startEarly(environ, o.Skip, detectJWE, stores)
	}
	cfg := provider.Config{
		Stores:        stores,
		Settings:      provider.Settings{Log: log},
		Timeout:       o.Timeout,
		Concurrency:   o.Concurrency,
		ExpandJSON:    o.ExpandJSON,
		IgnoreMissing: o.IgnoreMissing,
		Skip:          o.Skip,
		AuthInputs:    authInputs,
		Passthrough:   passthrough(o),
		DryRun:        dryRun,
		DetectJWE:     detectJWE,
	}
	refreshConfig(o, &cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res *provider.Resolution
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := provider.Resolve(ctx, cfg, environ)
		done <- result{res, err}
	}()
	for {
		select {
		case r := <-done:
			if closer == nil {
				if refreshOn(o) && !dryRun {
					residentStores = stores // kept (stores_local.go)
				}
				return r.res, 0, r.err
			}
			if dryRun || o.Exec {
				// Nothing will reap it after this: wait for it.
				if err := closer.Close(); err != nil {
					log.Warn("resolver", "err", err)
				}
			} else if refreshOn(o) {
				// Refresh checks and re-reads through these stores
				// while the command runs: the resolver stays, until
				// secrets-init exits (it then sees the connection
				// end, or dies with its parent).
				residentStores = stores
			} else {
				// The supervisor's reaper collects it while the
				// command starts.
				closer.Detach()
			}
			// Each is one line, in this process's format, instead of one
			// per variable: the cause and its fix are the same for all.
			if err := closer.Crashed(); err != nil { // no value: the report was dropped
				resolverLine(o, log, "resolution failed; the command was not started", "; the command was not started", err)
				return nil, exitFailed, nil
			}
			if err := closer.StartError(); err != nil {
				resolverLine(o, log, "cannot start the resolver", "", err)
				return nil, exitFailed, nil
			}
			return r.res, 0, r.err
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP:
				if closer != nil {
					closer.Kill()
				}
				fmt.Fprintf(os.Stderr, "secrets-init: %s: resolution aborted; the command was not started\n", signals.Name(sig))
				return nil, 128 + int(sig), nil
			}
		}
	}
}

// startEarly starts the resolver, when the environment holds a reference
// to one of its stores, while this process parses and plans the
// resolution: its start (copying it into a memfd, then its own runtime and
// package initialisation) is the longest part of a resolution's fixed
// cost. The engine's first Open of such a store waits for the same start.
func startEarly(environ, skip []string, detectJWE bool, stores map[provider.Kind]provider.Opener) {
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		ref, ok, err := provider.Parse(value)
		if !ok && detectJWE {
			ref, ok, err = provider.ParseBare(value)
		}
		if !ok || err != nil || ref.Kind == provider.File || stores[ref.Kind] == nil || slices.Contains(skip, name) {
			continue
		}
		go stores[ref.Kind](context.Background(), provider.Settings{})
		return
	}
}

// resolverLine reports err, a failure of the resolver process, as one
// line: msg with err in JSON, else err followed by suffix.
func resolverLine(o *options.Options, log *slog.Logger, msg, suffix string, err error) {
	if o.LogFormat == "json" {
		log.Error(msg, "err", err)
	} else {
		fmt.Fprintf(os.Stderr, "secrets-init: %v%s\n", err, suffix)
	}
}

// passthrough lists the auth inputs the command may keep: --passthrough
// and vault-env's VAULT_ENV_PASSTHROUGH.
func passthrough(o *options.Options) []string {
	return append(o.Passthrough[:len(o.Passthrough):len(o.Passthrough)], strings.Split(os.Getenv("VAULT_ENV_PASSTHROUGH"), ",")...)
}

// authInputs are variables that exist only for secrets-init to log in
// with (Vault's, as bank-vaults vault-env reads them): they never reach
// the command unless passed through (--passthrough,
// VAULT_ENV_PASSTHROUGH), whether or not this binary has the Vault store,
// and are scrubbed from secrets-init's own /proc environ (ScrubEnviron).
var authInputs = []string{
	"VAULT_TOKEN", "VAULT_TOKEN_FILE", "VAULT_AUTH_METHOD", "VAULT_ROLE", "VAULT_PATH",
	"VAULT_ROLE_ID", "VAULT_ROLE_ID_FILE", "VAULT_SECRET_ID", "VAULT_SECRET_ID_FILE",
	"VAULT_JWT", "VAULT_JWT_FILE", "VAULT_REVOKE_TOKEN", "VAULT_ENV_PASSTHROUGH",
}

// residentStores are the stores of the resolution when refresh keeps
// them (and, in the split build, the resolver) for the command's life.
var residentStores map[provider.Kind]provider.Opener

// openers are the Openers of the stores this binary was built with,
// configured by the flags: the resolution's own when they are kept for
// refresh.
func openers(o *options.Options) map[provider.Kind]provider.Opener {
	if residentStores != nil {
		return residentStores
	}
	m, _ := openStores(o, nil)
	return m
}

// A storeCloser ends the stores' resolver process, in a build that has
// one (stores_split.go).
type storeCloser interface {
	Close() error      // the resolution is over: end the resolver and wait for it
	Detach()           // the resolution is over: end the resolver, for the reaper to collect
	Kill()             // the resolution was aborted: kill it and wait for it
	StartError() error // non-nil when the resolver was needed and could not start
	Crashed() error    // non-nil when the resolver crashed (a panic or a fatal error)
}

// environment is the process environment merged with the --env-file
// files. Variables a file adds are also set in this process, so that the
// stores' SDKs see them (AWS_REGION, VAULT_ADDR, …).
func environment(files []string) ([]string, error) {
	var parsed [][]string
	for _, f := range files {
		env, err := envfile.Read(f)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, env)
	}
	environ := envfile.Merge(os.Environ(), parsed...)
	for _, kv := range environ[len(os.Environ()):] {
		name, value, _ := strings.Cut(kv, "=")
		os.Setenv(name, value)
	}
	return environ, nil
}

// fail reports a failed resolution: a line per failed variable, then a
// summary. No value is in any of it.
func fail(o *options.Options, log *slog.Logger, res *provider.Resolution, err error) {
	var f *provider.Failure
	if !errors.As(err, &f) {
		log.Error("resolution failed", "err", err)
		return
	}
	for _, v := range f.Vars {
		if o.LogFormat == "json" {
			log.Error("cannot resolve", "variable", v.Name, "reference", v.Reference, "error", v.Reason())
		} else {
			fmt.Fprintf(os.Stderr, "secrets-init: %s: %s: %s\n", v.Name, v.Reference, v.Reason())
		}
	}
	summary := fmt.Sprintf("%d of %d references failed; the command was not started", len(f.Vars), len(res.Report))
	if o.LogFormat == "json" {
		log.Error(summary, "failed", len(f.Vars), "references", len(res.Report))
	} else {
		fmt.Fprintf(os.Stderr, "secrets-init: %s\n", summary)
	}
}
