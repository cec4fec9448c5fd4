package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Keep opens once, and tries again after a failed Open.
func TestKeep(t *testing.T) {
	opens := 0
	fail := true
	open := Keep(func(context.Context, Settings) (Store, error) {
		opens++
		if fail {
			return nil, errors.New("no credentials")
		}
		return &fileStore{}, nil
	})
	if _, err := open(context.Background(), Settings{}); err == nil {
		t.Fatal("a failed Open was not reported")
	}
	fail = false
	a, err1 := open(context.Background(), Settings{})
	b, err2 := open(context.Background(), Settings{})
	if err1 != nil || err2 != nil || a != b || opens != 2 {
		t.Errorf("stores %p %p (%v, %v) after %d opens; want one store, 2 opens", a, b, err1, err2, opens)
	}
	if Keep(nil) != nil {
		t.Error("Keep(nil) is not nil")
	}
}

// A LeaseID prints as [lease id] however it is printed or logged.
func TestLeaseIDHidden(t *testing.T) {
	const id = "database/creds/app/SECRET-LEASE"
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "lease", LeaseID(id), "status", Status{LeaseID: id})
	slog.New(slog.NewJSONHandler(&log, nil)).Info("x", "lease", LeaseID(id), "result", Result{LeaseID: id})
	j, _ := json.Marshal(Status{LeaseID: id})
	out := fmt.Sprintf("%v %+v %#v %s %q %x", LeaseID(id), Result{LeaseID: id}, Status{LeaseID: id}, LeaseID(id), LeaseID(id), LeaseID(id)) + log.String() + string(j)
	if strings.Contains(out, "SECRET-LEASE") {
		t.Errorf("a lease id was printed: %s", out)
	}
	if LeaseID(id).Reveal() != id {
		t.Error("Reveal does not give the id")
	}
}
