package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

const (
	testImage      = "mailchaos/harness-test:dev"
	toxiproxyImage = "mailchaos/toxiproxy:2.12.0"
)

// testRunID returns a run id for a test; MAILCHAOS_TEST_PREFIX lets a
// developer tell their runs apart on a shared engine.
func testRunID() string {
	prefix := os.Getenv("MAILCHAOS_TEST_PREFIX")
	if prefix == "" {
		prefix = "test"
	}
	return prefix + "-" + NewRunID()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: testLogLevel()}))
}

func testLogLevel() slog.Level {
	if os.Getenv("MAILCHAOS_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testOutDir is where a test's Teardown saves logs: MAILCHAOS_TEST_OUT/<run>
// when set (to read them after the test), else a temporary folder.
func testOutDir(t *testing.T, runID string) string {
	if dir := os.Getenv("MAILCHAOS_TEST_OUT"); dir != "" {
		return filepath.Join(dir, runID)
	}
	return t.TempDir()
}

var (
	dockerOnce sync.Once
	dockerCli  *client.Client
	dockerErr  error
)

// needDocker skips the test when no engine answers (unit-only machines).
func needDocker(t *testing.T) *client.Client {
	t.Helper()
	dockerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		dockerCli, dockerErr = connectDocker(ctx)
	})
	if dockerErr != nil {
		t.Skipf("no Docker engine: %v", dockerErr)
	}
	return dockerCli
}

// needTestImages builds the toy stack's images when they are missing: the
// bannerd test double and, if `make images` has not run, Toxiproxy.
func needTestImages(t *testing.T) {
	t.Helper()
	cli := needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	buildGoImage(ctx, t, cli, testImage, "./testdata/bannerd", "bannerd", []string{"/bannerd"}, nil, sourceHash(t, "testdata/bannerd"))
	buildGoImage(ctx, t, cli, toxiproxyImage, "github.com/Shopify/toxiproxy/v2/cmd/server", "toxiproxy", []string{"/toxiproxy"}, []string{"-host=0.0.0.0"}, "")
}

var buildMu sync.Mutex

// testHashLabel carries the hash of a test image's source, so that an
// image built from an older bannerd is rebuilt, not used.
const testHashLabel = "mailchaos.test-hash"

// sourceHash returns the SHA-256 of the files of dir (names and contents).
func sourceHash(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// buildGoImage builds a static Go binary into a FROM scratch image, unless
// the tag exists (and, when hash is given, carries it in testHashLabel).
func buildGoImage(ctx context.Context, t *testing.T, cli *client.Client, tag, pkg, bin string, entrypoint, cmd []string, hash string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if img, err := cli.ImageInspect(ctx, tag); err == nil && (hash == "" || img.Config != nil && img.Config.Labels[testHashLabel] == hash) {
		return
	}
	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, bin), pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	binary, err := os.ReadFile(filepath.Join(dir, bin))
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := json.Marshal(entrypoint)
	cm, _ := json.Marshal(cmd)
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT %s\n", bin, bin, ep)
	if cmd != nil {
		dockerfile += fmt.Sprintf("CMD %s\n", cm)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range map[string][]byte{"Dockerfile": []byte(dockerfile), bin: binary} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))})
		_, _ = tw.Write(data)
	}
	_ = tw.Close()
	var labels map[string]string
	if hash != "" {
		labels = map[string]string{testHashLabel: hash}
	}
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: labels})
	if err != nil {
		t.Fatalf("build image %s: %v", tag, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build image %s: %s", tag, out)
	}
	t.Logf("built %s", tag)
}

// labelled counts the containers, networks and volumes labelled with runID.
func labelled(t *testing.T, runID string) (containers, networks, volumes int) {
	t.Helper()
	cli := needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := make(client.Filters).Add("label", LabelRun+"="+runID)
	c, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	n, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(c.Items), len(n.Items), len(v.Items)
}

// assertNothingLeft fails when anything labelled with runID remains.
func assertNothingLeft(t *testing.T, runID string) {
	t.Helper()
	c, n, v := labelled(t, runID)
	if c+n+v > 0 {
		t.Errorf("run %s left %d containers, %d networks, %d volumes behind", runID, c, n, v)
	}
}

// upForTest brings the stack of descriptor path up with 20 users, bounded
// by timeout, and tears it down when the test ends, checking nothing of
// the run is left; it skips under -short and without Docker.
func upForTest(t *testing.T, path string, timeout time.Duration) (ctx context.Context, env *Env, runID string) {
	t.Helper()
	if testing.Short() {
		t.Skip("Docker test")
	}
	needDocker(t)
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	runID = testRunID()
	start := time.Now()
	env, err = Up(ctx, d, Options{RunID: runID, OutDir: testOutDir(t, runID), Logger: testLogger(t), Users: 20})
	t.Cleanup(func() {
		if err := env.Teardown(context.Background()); err != nil {
			t.Errorf("teardown: %v", err)
		}
		assertNothingLeft(t, runID)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s up in %s", d.Name, time.Since(start).Round(time.Millisecond))
	return ctx, env, runID
}
