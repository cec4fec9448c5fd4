package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/smithy-go/logging"

	"github.com/secrets-init/secrets-init/provider"
)

// The SDK's own warnings go to secrets-init's logger, in its format (one
// JSON line with --log-format json), and every client logs through it.
func TestSDKLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newFake(t, "eu-west-1") // an environment of its own
	e, err := loadEnv(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	s := provider.Settings{Log: log}
	sm := newSecretsManager(e, s).clients.get("eu-west-1")
	ps := newSSM(e, s).clients.get("eu-west-1")
	for name, l := range map[string]logging.Logger{"config (credential providers)": e.cfg.Logger, "secretsmanager": sm.Options().Logger, "ssm": ps.Options().Logger} {
		if _, ok := l.(sdkLogger); !ok {
			t.Errorf("%s client logs through %T, want sdkLogger", name, l)
		}
	}
	sm.Options().Logger.Logf(logging.Warn, "Response has no supported checksum.\nNot validating %s", "payload")
	sm.Options().Logger.Logf(logging.Debug, "a debug line")
	var line struct{ Level, Msg string }
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want one JSON line, got %q: %v", buf.String(), err)
	}
	if line.Level != "WARN" || line.Msg != "AWS SDK: Response has no supported checksum. Not validating payload" {
		t.Errorf("logged %+v", line)
	}
}
