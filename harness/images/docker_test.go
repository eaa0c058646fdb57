package images

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildSkipsUpToDate builds a tiny FROM scratch image twice: the second
// build must be skipped, and a changed file must rebuild it.
func TestBuildSkipsUpToDate(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Skip("no Docker engine")
	}
	tag := "mailchaos/images-test:" + time.Now().Format("150405")
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", tag).Run() })
	dir := writeTree(t, map[string]string{
		"images.yaml":     "version: 1\nimages:\n  - tag: " + tag + "\n    kind: docker\n    context: tiny\n",
		"tiny/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"tiny/hello.txt":  "hello\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := func() Result {
		t.Helper()
		s, err := Load(filepath.Join(dir, "images.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		res, err := Build(ctx, s, Options{Progress: &out})
		t.Log(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	if r := build(); r.Status != StatusBuilt {
		t.Fatalf("first build: %s", r.Status)
	}
	start := time.Now()
	if r := build(); r.Status != StatusSkipped {
		t.Fatalf("second build: %s, want skipped", r.Status)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("skipped build took %s", d)
	}
	if err := os.WriteFile(filepath.Join(dir, "tiny/hello.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := build(); r.Status != StatusBuilt {
		t.Fatalf("after change: %s, want built", r.Status)
	}
}

// TestNoEngine checks the one-line cause and fix when no engine answers.
func TestNoEngine(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	s, err := Load("../../fixtures/stacks/reference/images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), s, Options{Progress: &bytes.Buffer{}})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "no Docker engine reachable") || !strings.Contains(err.Error(), "DOCKER_HOST") {
		t.Fatalf("err = %v", err)
	}
	_, err = Build(context.Background(), s, Options{Progress: &bytes.Buffer{}, Docker: "docker-not-here"})
	if err == nil || !strings.Contains(err.Error(), "apt-get install docker.io") {
		t.Fatalf("err = %v", err)
	}
}
