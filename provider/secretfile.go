package provider

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// OpenFile opens the secretfile: store, which reads local files such as
// Docker secrets (/run/secrets/NAME) or mounted Kubernetes Secrets.
func OpenFile(_ context.Context, s Settings) (Store, error) {
	return fileStore{s.Limit}, nil
}

type fileStore struct{ limit *Limiter }

func (fs fileStore) Fetch(ctx context.Context, targets []Target) []Result {
	rs := make([]Result, len(targets))
	fs.limit.Each(ctx, len(targets), func(i int) {
		rs[i] = readFile(targets[i].Name)
	})
	return rs
}

func readFile(path string) Result {
	b, err := os.ReadFile(path)
	var pe *fs.PathError
	switch {
	case err == nil:
		return Result{Value: append([]byte{}, b...)}
	case errors.Is(err, fs.ErrNotExist):
		return Result{Err: fmt.Errorf("file %s %w", path, ErrNotFound)}
	case errors.As(err, &pe):
		return Result{Err: fmt.Errorf("cannot read file %s: %w", path, pe.Err)}
	}
	return Result{Err: err}
}
