package inject

import (
	"strings"
	"testing"
)

func TestValidateFlags(t *testing.T) {
	for _, ok := range [][]string{nil, {"--log-format=json"}, {"--timeout=2m", "--concurrency", "4"}, {"-p", "aws"}, {"--skip=A", "--skip=B", "--exec"}} {
		if err := ValidateFlags(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--nope"}, "not defined: -nope"},
		{[]string{"--timeout=soon"}, `invalid value "soon" for flag -timeout`},
		{[]string{"--concurrency=many"}, "-concurrency"},
		{[]string{"--exec", "sh"}, `"sh" is not a flag`},
		{[]string{"--help"}, "help"},
		{[]string{"--version"}, "--version"},
		{[]string{"--log-format=xml"}, "log-format"},
		{[]string{"--timeout=-1s"}, "--timeout must be positive"},
	} {
		err := ValidateFlags(bad.args)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: %v, want %q", bad.args, err, bad.msg)
		}
	}
}

func TestIsJWE(t *testing.T) {
	for v, want := range map[string]bool{"jwe:eyJ...": true, "jwe:": true, "JWE:x": false, "xjwe:": false, "": false} {
		if IsJWE(v) != want {
			t.Errorf("IsJWE(%q) = %v", v, !want)
		}
	}
}
