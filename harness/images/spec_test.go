package images

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTree creates files (path -> content) under a temp dir and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goodSpec = `version: 1
images:
  - tag: t/app:v1
    kind: docker
    context: app
    args: {BASE: "t/base:1"}
  - tag: t/base:1
    kind: debian
    suite: bookworm
    packages: [postfix, socat]
  - tag: t/proxy:1
    kind: go
    package: example.com/cmd/proxy
    binary: proxy
  - tag: t/app:v2
    kind: docker
    context: app2
`

func goodTree(t *testing.T) string {
	return writeTree(t, map[string]string{
		"images.yaml":     goodSpec,
		"app/Dockerfile":  "ARG BASE=t/other:1\nFROM ${BASE}\nCOPY a.conf /etc/a.conf\n",
		"app/a.conf":      "x = 1\n",
		"app2/Dockerfile": "# v2 is v1 plus tuning\nFROM t/app:v1 AS base\nFROM base\nCOPY b.conf /etc/\n",
		"app2/b.conf":     "y = 2\n",
	})
}

func fakeGo(im *Image) (GoInfo, error) {
	return GoInfo{GoVersion: "go1.26.8", Platform: "linux/amd64", Modules: []string{"example.com@v1.0.0"}}, nil
}

func TestLoadOrder(t *testing.T) {
	dir := goodTree(t)
	s, err := Load(filepath.Join(dir, "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	order, err := s.Order()
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, im := range order {
		tags = append(tags, im.Tag)
	}
	if got, want := strings.Join(tags, " "), "t/base:1 t/app:v1 t/proxy:1 t/app:v2"; got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
	if s.Mirror != DefaultMirror {
		t.Errorf("mirror = %q", s.Mirror)
	}
}

func TestSelectIncludesBases(t *testing.T) {
	s, err := Load(filepath.Join(goodTree(t), "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sel, err := s.Select([]string{"t/app:v2"})
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, im := range sel {
		tags = append(tags, im.Tag)
	}
	if got, want := strings.Join(tags, " "), "t/base:1 t/app:v1 t/app:v2"; got != want {
		t.Errorf("select = %s, want %s", got, want)
	}
	if _, err := s.Select([]string{"t/nope:1"}); err == nil || !strings.Contains(err.Error(), "the spec lists") {
		t.Errorf("unknown tag error = %v", err)
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	dir := writeTree(t, map[string]string{"images.yaml": `version: 2
mirror: ftp://x
colour: blue
images:
  - tag: Bad/Tag
    kind: debian
    suite: Bookworm
    packages: ["no spaces allowed"]
  - tag: t/a:1
    kind: rpm
  - tag: t/g:1
    kind: go
    suite: bookworm
  - tag: t/d:1
    kind: docker
    context: missing
  - tag: t/d:1
    kind: docker
`})
	_, err := Load(filepath.Join(dir, "images.yaml"))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"images.yaml:1: version must be 1",
		"mirror \"ftp://x\" must be an http(s) URL",
		"images.yaml:3: unknown key \"colour\"",
		"images.yaml:5: image \"Bad/Tag\": tag must be lower-case",
		"suite must be a Debian suite name",
		"package \"no spaces allowed\"",
		"images.yaml:9: image \"t/a:1\": unknown kind \"rpm\"",
		"images.yaml:13: image \"t/g:1\": key \"suite\" does not apply to kind go",
		"missing package",
		"binary must be a plain file name",
		"images.yaml:14: image \"t/d:1\": Dockerfile",
		"images.yaml:17: image \"t/d:1\": tag already listed at line 14",
		"images.yaml:17: image \"t/d:1\": missing context",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestCycle(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"images.yaml":  "version: 1\nimages:\n  - {tag: 't/a:1', kind: docker, context: a}\n  - {tag: 't/b:1', kind: docker, context: b}\n",
		"a/Dockerfile": "FROM t/b:1\n",
		"b/Dockerfile": "FROM t/a:1\n",
	})
	_, err := Load(filepath.Join(dir, "images.yaml"))
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("err = %v, want a cycle", err)
	}
}

func TestHashesPropagate(t *testing.T) {
	dir := goodTree(t)
	load := func() map[string]string {
		s, err := Load(filepath.Join(dir, "images.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.Hashes(Inputs{Go: fakeGo})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := load()
	if again := load(); len(again) != 4 || again["t/app:v2"] != before["t/app:v2"] {
		t.Fatalf("hashes not stable: %v vs %v", before, again)
	}
	// A changed config file of app:v1 changes app:v1 and app:v2 (FROM it),
	// nothing else.
	if err := os.WriteFile(filepath.Join(dir, "app/a.conf"), []byte("x = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	after := load()
	changed := func(tag string) bool { return before[tag] != after[tag] }
	if !changed("t/app:v1") || !changed("t/app:v2") || changed("t/base:1") || changed("t/proxy:1") {
		t.Errorf("after a.conf edit: changed v1=%t v2=%t base=%t proxy=%t",
			changed("t/app:v1"), changed("t/app:v2"), changed("t/base:1"), changed("t/proxy:1"))
	}
	// Package order does not matter; a new package changes the base and all above it.
	spec := strings.Replace(goodSpec, "[postfix, socat]", "[socat, postfix]", 1)
	if err := os.WriteFile(filepath.Join(dir, "images.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if h := load(); h["t/base:1"] != after["t/base:1"] {
		t.Error("package order changed the hash")
	}
	spec = strings.Replace(goodSpec, "[postfix, socat]", "[postfix, socat, procps]", 1)
	if err := os.WriteFile(filepath.Join(dir, "images.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	h := load()
	if h["t/base:1"] == after["t/base:1"] || h["t/app:v2"] == after["t/app:v2"] || h["t/proxy:1"] != after["t/proxy:1"] {
		t.Error("a new package must change the base and its dependents only")
	}
}

func TestGoHashCoversToolchainModulesAndSources(t *testing.T) {
	s, err := Load(filepath.Join(goodTree(t), "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := s.Hashes(Inputs{Go: fakeGo})
	h2, _ := s.Hashes(Inputs{Go: func(im *Image) (GoInfo, error) {
		gi, _ := fakeGo(im)
		gi.Modules = []string{"example.com@v1.0.1"}
		return gi, nil
	}})
	h3, _ := s.Hashes(Inputs{Go: func(im *Image) (GoInfo, error) {
		gi, _ := fakeGo(im)
		gi.GoVersion = "go1.27.0"
		return gi, nil
	}})
	h4, _ := s.Hashes(Inputs{Go: func(im *Image) (GoInfo, error) {
		gi, _ := fakeGo(im)
		gi.Sources = []string{"faults/smtptoxic/smtptoxic.go 0123"}
		return gi, nil
	}})
	if h1["t/proxy:1"] == h2["t/proxy:1"] || h1["t/proxy:1"] == h3["t/proxy:1"] {
		t.Error("module or toolchain change did not change the go image hash")
	}
	if h1["t/proxy:1"] == h4["t/proxy:1"] {
		t.Error("a change to our own source did not change the go image hash")
	}
	if h1["t/app:v1"] != h2["t/app:v1"] {
		t.Error("go module change leaked into an unrelated image")
	}
}

func TestDockerfileFroms(t *testing.T) {
	df := "# c\nARG BASE=a/b:1\nARG OTHER\nFROM --platform=linux/amd64 ${BASE} AS build\nRUN x \\\n  y\nFROM $OTHER\nFROM build\nFROM scratch\n"
	got := dockerfileFroms([]byte(df), map[string]string{"OTHER": "c/d:2"})
	if strings.Join(got, ",") != "a/b:1,c/d:2,scratch" {
		t.Errorf("froms = %v", got)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "pull": ModePull, "debootstrap": ModeDebootstrap} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMode("apt"); err == nil {
		t.Error("ParseMode(apt) accepted")
	}
}

func TestReferenceSpecLoads(t *testing.T) {
	s, err := Load("../../fixtures/stacks/reference/images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Order(); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"mailchaos/debian:bookworm", "mailchaos/toxiproxy:2.12.0", "mailchaos/mta:v2", "mailchaos/store:v2"} {
		if s.Find(tag) == nil {
			t.Errorf("reference spec lacks %s", tag)
		}
	}
}

// TestEximCyrusSpecLoads: the second stack's images build from their own
// Debian base (not the reference's tag) and share the reference's
// Toxiproxy entry, so both stacks hash it, and reuse it, alike.
func TestEximCyrusSpecLoads(t *testing.T) {
	s, err := Load("../../fixtures/stacks/exim-cyrus/images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	order, err := s.Order()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load("../../fixtures/stacks/reference/images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range order {
		if im.Kind == KindDebian && ref.Find(im.Tag) != nil {
			t.Errorf("debian base %s has a reference stack tag", im.Tag)
		}
	}
	for _, tag := range []string{"mailchaos/exim-cyrus-mta:v1", "mailchaos/exim-cyrus-store:v1"} {
		im := s.Find(tag)
		if im == nil {
			t.Fatalf("spec lacks %s", tag)
		}
		bases, err := s.Bases(im)
		if err != nil || len(bases) != 1 || bases[0].Tag != "mailchaos/debian-exim-cyrus:bookworm" {
			t.Errorf("%s is built from %v (%v), want mailchaos/debian-exim-cyrus:bookworm", tag, bases, err)
		}
	}
	mine, theirs := s.Find("mailchaos/toxiproxy:2.12.0"), ref.Find("mailchaos/toxiproxy:2.12.0")
	if mine == nil || theirs == nil {
		t.Fatal("a spec lacks mailchaos/toxiproxy:2.12.0")
	}
	a, b := *mine, *theirs
	a.Line, b.Line = 0, 0
	if !reflect.DeepEqual(a, b) {
		t.Errorf("toxiproxy entries differ:\n%+v\n%+v", a, b)
	}
}

// A spec is one YAML document: what follows a --- is refused, not dropped.
func TestSecondDocumentRefused(t *testing.T) {
	for in, want := range map[string]string{
		"version: 1\nimages: []\n---\nimages: [{tag: x}]\n": "x.yaml: line 3: a second YAML document (after ---)",
		"version: 1\nimages: []\n---\n}\n":                  "x.yaml: yaml: line 3: did not find expected",
	} {
		if _, err := Parse([]byte(in), "x.yaml", t.TempDir()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
