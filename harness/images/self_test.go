package images

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const selfSpec = `version: 1
images:
  - tag: t/proxy:1
    kind: self
    binary: proxy
    cmd: [-port, "8474"]
    expose: [8474]
`

// staticBinary builds a tiny static Go program.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := writeTree(t, map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.21\n",
		"main.go": "package main\n\nfunc main() { println(\"hello\") }\n",
	})
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestSelfPlan(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a Linux build of the test program")
	}
	bin := staticBinary(t)
	s, err := Load(filepath.Join(writeTree(t, map[string]string{"images.yaml": selfSpec}), "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Plan(context.Background(), s, Options{Self: bin})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || len(plan[0].Hash) != 64 || !strings.Contains(plan[0].From, bin) ||
		!strings.Contains(plan[0].From, "linux/"+runtime.GOARCH) || !strings.Contains(plan[0].From, "/proxy") {
		t.Fatalf("plan = %+v", plan)
	}
	// The binary's bytes are the image's version.
	if err := os.WriteFile(bin, append(must(os.ReadFile(bin)), 0), 0o755); err != nil {
		t.Fatal(err)
	}
	again, err := Plan(context.Background(), s, Options{Self: bin})
	if err != nil || again[0].Hash == plan[0].Hash {
		t.Fatalf("a changed binary kept the hash (%v)", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A binary a FROM scratch image cannot run is refused up front, with the fix.
func TestSelfRefusesWhatScratchCannotRun(t *testing.T) {
	s, err := Load(filepath.Join(writeTree(t, map[string]string{"images.yaml": selfSpec}), "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{script: "not a Linux executable"}
	// A dynamically linked system binary, where there is one.
	for _, p := range []string{"/bin/ls", "/usr/bin/ls", "/bin/sh"} {
		if f, err := elf.Open(p); err == nil {
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					cases[p] = "dynamically linked"
				}
			}
			f.Close()
		}
	}
	// A Go program linked with cgo: the fix names the go command.
	if _, err := exec.LookPath("gcc"); err == nil {
		dir := writeTree(t, map[string]string{
			"go.mod":  "module example.com/cgo\n\ngo 1.21\n",
			"main.go": "package main\n\n// int one(void) { return 1; }\nimport \"C\"\n\nfunc main() { println(C.one()) }\n",
		})
		cmd := exec.Command("go", "build", "-o", "cgo", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("no cgo build (%v): %s", err, out)
		} else {
			cases[filepath.Join(dir, "cgo")] = "CGO_ENABLED=0 go build -o " + filepath.Join(dir, "cgo") + " example.com/cgo"
		}
	}
	for bin, want := range cases {
		_, err := Plan(context.Background(), s, Options{Self: bin})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
			t.Errorf("Self %s: err = %v, want %q and the fix", bin, err, want)
		}
	}
}

func TestSelfHashCoversBinaryAndConfig(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.yaml": selfSpec})
	s, err := Load(filepath.Join(dir, "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := func(v string) Inputs { return Inputs{Self: func(*Image) (string, error) { return v, nil }} }
	h1, err := s.Hashes(sum("aa"))
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := s.Hashes(sum("bb"))
	if h1["t/proxy:1"] == h2["t/proxy:1"] {
		t.Error("another binary kept the hash")
	}
	s.Images[0].Cmd = []string{"-port", "9999"}
	if h3, _ := s.Hashes(sum("aa")); h3["t/proxy:1"] == h1["t/proxy:1"] {
		t.Error("another cmd kept the hash")
	}
	if _, err := s.Hashes(Inputs{}); err == nil {
		t.Error("a self image hashed without a resolver")
	}
}

func TestSelfSpecValidation(t *testing.T) {
	bad := "version: 1\nimages:\n  - tag: t/p:1\n    kind: self\n    binary: a/b\n    package: ./x\n"
	_, err := Parse([]byte(bad), "images.yaml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "binary must be a plain file name") || !strings.Contains(err.Error(), `key "package" does not apply to kind self`) {
		t.Fatalf("err = %v", err)
	}
}
