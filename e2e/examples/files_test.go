package examples

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	sigsyaml "sigs.k8s.io/yaml"
)

// dockerfile is what the tests read from a Dockerfile.
type dockerfile struct {
	entrypoint, cmd []string
	copiesBinary    bool              // COPY --from=<secrets-init stage> /secrets-init /secrets-init
	runEnv          map[string]string // the -e NAME=VALUE of `docker run` lines in comments
}

var runEnvRe = regexp.MustCompile(`^#\s+-e\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)`)

// readDockerfile reads the instructions the examples use. ENTRYPOINT and
// CMD must be in exec form (JSON arrays): in shell form a shell would be PID
// 1 and secrets-init would not get the signals.
func readDockerfile(t *testing.T, file string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	df := dockerfile{runEnv: map[string]string{}}
	stages := map[string]bool{} // aliases of the stages FROM the secrets-init image
	sc := bufio.NewScanner(bytes.NewReader(data))
	var line string
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") {
			if m := runEnvRe.FindStringSubmatch(text); m != nil {
				df.runEnv[m[1]] = strings.Trim(m[2], `'"`)
			}
			continue
		}
		if strings.HasSuffix(text, `\`) {
			line += strings.TrimSuffix(text, `\`) + " "
			continue
		}
		line += text
		fields := strings.Fields(line)
		rest := strings.TrimSpace(strings.TrimPrefix(line, firstField(fields)))
		line = ""
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			// FROM ${SECRETS_INIT_IMAGE} AS secrets-init, or the image by name.
			if img := strings.ToLower(fields[1]); len(fields) == 4 && strings.EqualFold(fields[2], "AS") &&
				(strings.Contains(img, "secrets_init") || strings.Contains(img, "secrets-init")) {
				stages[fields[3]] = true
			}
		case "COPY":
			if len(fields) == 4 && strings.HasPrefix(fields[1], "--from=") && stages[strings.TrimPrefix(fields[1], "--from=")] &&
				fields[2] == "/secrets-init" && fields[3] == "/secrets-init" {
				df.copiesBinary = true
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &df.entrypoint); err != nil {
				t.Errorf("%s: ENTRYPOINT %s is not in exec form (a JSON array): %v", file, rest, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &df.cmd); err != nil {
				t.Errorf("%s: CMD %s is not in exec form (a JSON array): %v", file, rest, err)
			}
		}
	}
	return df
}

func firstField(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// TestECSTaskDefinition decodes the task definition strictly into the
// RegisterTaskDefinition input of the ECS API and checks its command line.
func TestECSTaskDefinition(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(examples, "ecs", "task-definition.json"))
	if err != nil {
		t.Fatal(err)
	}
	var td ecs.RegisterTaskDefinitionInput
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&td); err != nil {
		t.Fatalf("task-definition.json: %v", err)
	}
	if td.Family == nil || len(td.ContainerDefinitions) != 1 {
		t.Fatal("task-definition.json: want a family and one container")
	}
	// The enums decode from any string: check them against the API's values.
	for _, c := range td.RequiresCompatibilities {
		if !slices.Contains(c.Values(), c) {
			t.Errorf("requiresCompatibilities: %q is not one of %q", c, c.Values())
		}
	}
	if !slices.Contains(td.NetworkMode.Values(), td.NetworkMode) {
		t.Errorf("networkMode %q is not one of %q", td.NetworkMode, td.NetworkMode.Values())
	}
	if rp := td.RuntimePlatform; rp != nil && (!slices.Contains(rp.CpuArchitecture.Values(), rp.CpuArchitecture) || !slices.Contains(rp.OperatingSystemFamily.Values(), rp.OperatingSystemFamily)) {
		t.Errorf("runtimePlatform %+v: unknown values", *rp)
	}
	// secrets-init reads the secrets with the task's role.
	if td.TaskRoleArn == nil || !strings.HasPrefix(*td.TaskRoleArn, "arn:aws:iam::") {
		t.Error("taskRoleArn: secrets-init needs the task role")
	}

	c := td.ContainerDefinitions[0]
	if c.LogConfiguration != nil && !slices.Contains(c.LogConfiguration.LogDriver.Values(), c.LogConfiguration.LogDriver) {
		t.Errorf("logDriver %q is unknown", c.LogConfiguration.LogDriver)
	}
	for _, pm := range c.PortMappings {
		if !slices.Contains(pm.Protocol.Values(), pm.Protocol) {
			t.Errorf("portMappings: protocol %q is unknown", pm.Protocol)
		}
	}
	df := readDockerfile(t, filepath.Join(examples, "dockerfile", "Dockerfile"))
	if !slices.Equal(c.EntryPoint, df.entrypoint) {
		t.Errorf("entryPoint %q, want the Dockerfile example's %q", c.EntryPoint, df.entrypoint)
	}
	if len(c.Command) == 0 || !strings.HasPrefix(c.Command[0], "/") {
		t.Fatalf("command %q: want the app's command line", c.Command)
	}
	vars := map[string]string{}
	for _, kv := range c.Environment {
		if kv.Name == nil || kv.Value == nil {
			t.Fatal("environment: an entry without name or value")
		}
		if _, dup := vars[*kv.Name]; dup {
			t.Errorf("environment: %s twice", *kv.Name)
		}
		vars[*kv.Name] = *kv.Value
	}
	for _, s := range c.Secrets {
		if _, dup := vars[*s.Name]; dup {
			t.Errorf("%s is in both environment and secrets: ECS refuses that", *s.Name)
		}
	}
	refs := checkRefs(t, "task-definition.json", vars)
	arns := 0
	for name, r := range refs {
		if r.Partition != "" {
			arns++
		}
		if r.Kind != kindSecretsManager && r.Kind != kindSSM {
			t.Errorf("%s: a %s reference in an AWS example", name, r.Kind)
		}
	}
	if arns == 0 || !kinds(refs)[kindSecretsManager] || !kinds(refs)[kindSSM] {
		t.Errorf("want Secrets Manager and SSM ARNs as environment values, got %v", refs)
	}

	// The command line runs: the app (the printer) gets its arguments.
	apps := printerDir(t, filepath.Base(c.Command[0]))
	argv := append([]string{bin}, c.EntryPoint[1:]...)
	argv = append(argv, filepath.Join(apps, filepath.Base(c.Command[0])))
	argv = append(argv, c.Command[1:]...)
	var plain []string
	for k, v := range vars {
		if _, ok := refs[k]; !ok {
			plain = append(plain, k+"="+v)
		}
	}
	if got := runPrinted(t, cleanEnv(nil, plain...), argv...); !slices.Equal(got.Args, c.Command[1:]) {
		t.Errorf("the app got %q, want %q", got.Args, c.Command[1:])
	}
}

// compose is the part of the Compose Specification the example uses,
// decoded strictly: a misspelt key is an error.
type compose struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Secrets  map[string]struct {
		File string `json:"file"`
	} `json:"secrets"`
}

type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context string            `json:"context"`
		Args    map[string]string `json:"args"`
	} `json:"build"`
	Entrypoint  []string          `json:"entrypoint"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Volumes     []string          `json:"volumes"`
	Secrets     []string          `json:"secrets"`
	User        string            `json:"user"`
	ReadOnly    bool              `json:"read_only"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck"`
}

// TestCompose checks the compose example's wiring, then runs its app's
// command line with the Docker secrets' files where compose would mount them
// (a temporary directory standing for /run/secrets).
func TestCompose(t *testing.T) {
	dir := filepath.Join(examples, "compose")
	data, err := os.ReadFile(filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf compose
	if err := sigsyaml.UnmarshalStrict(data, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	app, okApp := cf.Services["app"]
	db, okDB := cf.Services["db"]
	if !okApp || !okDB || len(cf.Services) != 2 {
		t.Fatalf("docker-compose.yml: want services app and db, got %v", slices.Sorted(maps.Keys(cf.Services)))
	}
	if _, ok := app.DependsOn["db"]; !ok {
		t.Error("app: depends_on db")
	}
	if app.Build == nil {
		t.Fatal("app: built from the example's Dockerfile")
	}
	df := readDockerfile(t, filepath.Join(dir, app.Build.Context, "Dockerfile"))

	// The entrypoint: secrets-init, its --env-file, then `--`.
	ep := app.Entrypoint
	if len(ep) < 2 || ep[0] != df.entrypoint[0] || ep[len(ep)-1] != "--" {
		t.Fatalf("app: entrypoint %q: want %s [FLAGS] --", ep, df.entrypoint[0])
	}
	if len(app.Command) == 0 {
		t.Fatal("app: an overridden entrypoint drops the image's CMD: want a command")
	}
	var envFile string
	for _, a := range ep[1 : len(ep)-1] {
		if v, ok := strings.CutPrefix(a, "--env-file="); ok {
			envFile = v
		}
	}
	hostEnvFile := ""
	for _, v := range app.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == envFile {
			hostEnvFile = filepath.Join(dir, parts[0])
		}
	}
	if envFile == "" || hostEnvFile == "" {
		t.Fatalf("app: want --env-file=PATH with PATH mounted from the host, got entrypoint %q, volumes %q", ep, app.Volumes)
	}

	// Every Docker secret a service reads is granted to it and exists.
	secretsDir := t.TempDir()
	for name, s := range cf.Secrets {
		copyFile(t, filepath.Join(dir, s.File), filepath.Join(secretsDir, name), 0o400)
	}
	checkSecretPath := func(service string, granted []string, where, p string) {
		name, ok := strings.CutPrefix(p, "/run/secrets/")
		switch {
		case !ok:
		case !slices.Contains(granted, name):
			t.Errorf("%s: %s reads /run/secrets/%s, not granted to service %s", where, p, name, service)
		case cf.Secrets[name].File == "":
			t.Errorf("%s: secret %s is not defined", where, name)
		}
	}
	checkSecretPath("db", db.Secrets, "db", db.Environment["POSTGRES_PASSWORD_FILE"])
	all := map[string]string{}
	for _, kv := range readEnvFile(t, hostEnvFile) {
		k, v, _ := strings.Cut(kv, "=")
		all[k] = v
	}
	for k, v := range app.Environment {
		all[k] = v
	}
	refs := checkRefs(t, "compose app", all)
	for name, r := range refs {
		if r.Kind != kindFile {
			t.Errorf("%s: want secretfile: references in the compose example, got %s", name, r.Kind)
		}
		checkSecretPath("app", app.Secrets, name, r.Name)
	}
	if len(refs) < 4 {
		t.Errorf("want the example's secretfile: references, got %d", len(refs))
	}

	// Run it: the env file and environment with /run/secrets/ pointing at
	// the temporary directory, and the app's command line.
	rewrite := func(s string) string { return strings.ReplaceAll(s, "/run/secrets/", secretsDir+"/") }
	envData, err := os.ReadFile(hostEnvFile)
	if err != nil {
		t.Fatal(err)
	}
	localEnvFile := filepath.Join(t.TempDir(), "app.env")
	mustWrite(t, localEnvFile, rewrite(string(envData)))
	var vars []string
	for k, v := range app.Environment {
		vars = append(vars, k+"="+rewrite(v))
	}
	argv := []string{bin}
	for _, a := range ep[1:] {
		if a == "--env-file="+envFile {
			a = "--env-file=" + localEnvFile
		}
		argv = append(argv, a)
	}

	// The app itself: show.sh prints every variable, masked.
	cmd := slices.Clone(app.Command)
	for i, a := range cmd {
		if a == "/app/show.sh" {
			cmd[i] = filepath.Join(dir, "show.sh")
		}
	}
	r := run(t, cleanEnv(nil, vars...), append(slices.Clone(argv), cmd...)...)
	if r.code != 0 {
		t.Fatalf("show.sh: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"DB_HOST                db\n", "DB_PASSWORD            co*** (28 chars)\n", "API_TOKEN              to*** (10 chars)\n", "mode 400)\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show.sh printed\n%s\nwant a line with %q", r.stdout, want)
		}
	}
	if strings.Contains(r.stdout, "correct-horse") {
		t.Error("show.sh printed a value unmasked")
	}

	// The exact values, through the printer.
	apps := printerDir(t, "app")
	got := runPrinted(t, cleanEnv(nil, vars...), append(argv, filepath.Join(apps, "app"), "--flag")...)
	if !slices.Equal(got.Args, []string{"--flag"}) {
		t.Errorf("the app got %q", got.Args)
	}
	password := strings.TrimSuffix(readString(t, filepath.Join(dir, cf.Secrets["db_password"].File)), "\n")
	var api map[string]string
	if err := json.Unmarshal([]byte(readString(t, filepath.Join(dir, cf.Secrets["api"].File))), &api); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"DB_PASSWORD":  password,
		"PGPASSWORD":   password,
		"API_TOKEN":    api["token"],
		"API_ENDPOINT": api["endpoint"],
		"DB_HOST":      "db", // the environment wins over the env file
		"DB_USER":      "app",
	} {
		if v, _ := envValue(got.Env, name); v != want {
			t.Errorf("%s=%q, want %q", name, v, want)
		}
	}
	p, _ := envValue(got.Env, "API_CREDENTIALS_FILE")
	if p == "" || strings.HasPrefix(p, "secretfile:") {
		t.Fatalf("API_CREDENTIALS_FILE=%q, want a path", p)
	}
	// The printer has exited, and secrets-init removed its private files
	// with it: ?file values live only as long as the app.
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("%s still exists after secrets-init exited: %v", p, err)
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
