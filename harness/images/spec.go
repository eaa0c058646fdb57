// Package images builds the container images a mailchaos stack needs without a
// container registry.
//
// An image spec file (images.yaml) lists images of four kinds:
//
//   - debian: a Debian base image with packages. Built from debian:<suite>-slim
//     where a registry answers, otherwise with debootstrap on the host and
//     docker import. Both paths yield the same tag and content hash.
//   - go: a Go main package from this module's dependencies, compiled as a
//     static binary into a FROM scratch image. It builds in a checkout of
//     the module that holds the spec (it runs go build there).
//   - self: the running program itself (Options.Self), a static Linux
//     binary, copied into a FROM scratch image as /<binary>. For a
//     multi-call program that serves a role when started under its name:
//     mailchaos as /toxiproxy is Toxiproxy's server. It needs neither a
//     checkout nor a Go toolchain, so an installed mailchaos builds it.
//   - docker: a build context with a Dockerfile whose steps only add
//     configuration (the build runs with --network none).
//
// Every image is labelled mailchaos.hash=<sha256 of its inputs>; Build skips an
// image whose tag already carries the hash, so a second build with nothing
// changed is fast and a changed input rebuilds exactly the images it affects
// and the images built FROM them.
//
// The package knows nothing about mail software: the reference stack's images
// are ordinary entries in fixtures/stacks/reference/images.yaml.
package images

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mailchaos/mailchaos/internal/yamldoc"
	"go.yaml.in/yaml/v3"
)

// Kind is the way an image is built.
type Kind string

// The kinds of image a spec may list.
const (
	KindDebian Kind = "debian"
	KindGo     Kind = "go"
	KindDocker Kind = "docker"
	KindSelf   Kind = "self"
)

// HashLabel is the image label that carries the content hash of its inputs.
const HashLabel = "mailchaos.hash"

// DefaultMirror is the Debian mirror debootstrap uses when the spec names none.
const DefaultMirror = "http://deb.debian.org/debian"

// Spec is a parsed images.yaml.
type Spec struct {
	// Version is the spec format version; only 1 exists.
	Version int `yaml:"version"`
	// Mirror is the Debian mirror for debootstrap (default DefaultMirror).
	Mirror string `yaml:"mirror"`
	// Images lists the images in any order; Build sorts them by dependency.
	Images []*Image `yaml:"images"`

	// Path is the file the spec was loaded from ("" when parsed from bytes).
	Path string `yaml:"-"`
	// Dir resolves relative context paths; the spec file's folder.
	Dir string `yaml:"-"`
}

// Image is one entry of a spec.
type Image struct {
	// Tag is the image reference to build, e.g. mailchaos/mta:v1.
	Tag string `yaml:"tag"`
	// Kind selects the recipe: debian, go or docker.
	Kind Kind `yaml:"kind"`

	// Suite is the Debian suite (debian kind), e.g. bookworm.
	Suite string `yaml:"suite"`
	// Packages are installed into the Debian base (debian kind).
	Packages []string `yaml:"packages"`

	// Package is the Go main package import path (go kind).
	Package string `yaml:"package"`
	// Binary names the binary inside the image, /<Binary> (go and self kinds).
	Binary string `yaml:"binary"`
	// Ldflags are passed to go build (go kind).
	Ldflags string `yaml:"ldflags"`

	// Context is the build context folder, relative to the spec (docker kind).
	Context string `yaml:"context"`
	// Dockerfile is relative to Context (docker kind, default Dockerfile).
	Dockerfile string `yaml:"dockerfile"`
	// Args are build args (docker kind).
	Args map[string]string `yaml:"args"`

	// Env is set in the image config (debian, go and self kinds).
	Env map[string]string `yaml:"env"`
	// Cmd is the image's default command (debian, go and self kinds; for go
	// and self the arguments after the binary).
	Cmd []string `yaml:"cmd"`
	// Expose lists container ports to declare (go and self kinds).
	Expose []int `yaml:"expose"`

	// Line is the line of the entry in the spec file.
	Line int `yaml:"-"`
}

var knownKeys = map[Kind][]string{
	KindDebian: {"tag", "kind", "suite", "packages", "env", "cmd"},
	KindGo:     {"tag", "kind", "package", "binary", "ldflags", "env", "cmd", "expose"},
	KindDocker: {"tag", "kind", "context", "dockerfile", "args"},
	KindSelf:   {"tag", "kind", "binary", "env", "cmd", "expose"},
}

var (
	tagRe   = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	suiteRe = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	pkgRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
)

// Load reads and validates an image spec file. All problems are reported at
// once, each as "file:line: problem".
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load image spec: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load image spec: %w", err)
	}
	return Parse(data, path, filepath.Dir(abs))
}

// Parse validates spec bytes; name labels problems and dir resolves contexts.
func Parse(data []byte, name, dir string) (*Spec, error) {
	var root yaml.Node
	if err := yamldoc.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var probs []string
	add := func(line int, format string, a ...any) {
		probs = append(probs, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, a...)))
	}
	s := &Spec{Path: name, Dir: dir}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:1: the spec must be a mapping with version, mirror and images", name)
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "version":
			if err := v.Decode(&s.Version); err != nil || s.Version != 1 {
				add(v.Line, "version must be 1")
			}
		case "mirror":
			if err := v.Decode(&s.Mirror); err != nil {
				add(v.Line, "mirror must be a URL string")
			}
		case "images":
			if v.Kind != yaml.SequenceNode {
				add(v.Line, "images must be a list")
				continue
			}
			for _, n := range v.Content {
				s.Images = append(s.Images, parseImage(n, add))
			}
		default:
			add(k.Line, "unknown key %q; known keys: version, mirror, images", k.Value)
		}
	}
	if s.Version == 0 {
		add(top.Line, "missing version: 1")
	}
	if s.Mirror == "" {
		s.Mirror = DefaultMirror
	} else if !strings.HasPrefix(s.Mirror, "http://") && !strings.HasPrefix(s.Mirror, "https://") {
		add(top.Line, "mirror %q must be an http(s) URL", s.Mirror)
	}
	if len(s.Images) == 0 {
		add(top.Line, "no images listed")
	}
	probs = append(probs, s.validate()...)
	if len(probs) > 0 {
		return nil, fmt.Errorf("invalid image spec (%d problems):\n  %s", len(probs), strings.Join(probs, "\n  "))
	}
	return s, nil
}

func parseImage(n *yaml.Node, add func(int, string, ...any)) *Image {
	im := &Image{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		add(n.Line, "an image must be a mapping with tag and kind")
		return im
	}
	if err := n.Decode(im); err != nil {
		add(n.Line, "%v", err)
	}
	im.Line = n.Line
	known, ok := knownKeys[im.Kind]
	if !ok {
		add(n.Line, "image %q: unknown kind %q; known kinds: debian, go, docker, self", im.Tag, im.Kind)
		return im
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		found := false
		for _, kk := range known {
			found = found || kk == k.Value
		}
		if !found {
			add(k.Line, "image %q: key %q does not apply to kind %s; known keys: %s", im.Tag, k.Value, im.Kind, strings.Join(known, ", "))
		}
	}
	return im
}

// validate checks the fields of every image and the dependency graph.
func (s *Spec) validate() []string {
	var probs []string
	add := func(im *Image, format string, a ...any) {
		probs = append(probs, fmt.Sprintf("%s:%d: image %q: %s", s.Path, im.Line, im.Tag, fmt.Sprintf(format, a...)))
	}
	seen := map[string]int{}
	for _, im := range s.Images {
		if im.Tag == "" {
			add(im, "missing tag (e.g. mailchaos/mta:v1)")
		} else if !tagRe.MatchString(im.Tag) {
			add(im, "tag must be lower-case name:tag, e.g. mailchaos/mta:v1")
		} else if l, dup := seen[im.Tag]; dup {
			add(im, "tag already listed at line %d", l)
		}
		seen[im.Tag] = im.Line
		switch im.Kind {
		case KindDebian:
			if !suiteRe.MatchString(im.Suite) {
				add(im, "suite must be a Debian suite name such as bookworm")
			}
			for _, p := range im.Packages {
				if !pkgRe.MatchString(p) {
					add(im, "package %q is not a Debian package name", p)
				}
			}
		case KindGo, KindSelf:
			if im.Kind == KindGo && im.Package == "" {
				add(im, "missing package (a Go main package import path)")
			}
			if im.Binary == "" || strings.ContainsAny(im.Binary, "/ ") {
				add(im, "binary must be a plain file name")
			}
			for _, p := range im.Expose {
				if p < 1 || p > 65535 {
					add(im, "expose port %d out of range", p)
				}
			}
		case KindDocker:
			if im.Context == "" {
				add(im, "missing context (a folder relative to the spec)")
				continue
			}
			if im.Dockerfile == "" {
				im.Dockerfile = "Dockerfile"
			}
			df := filepath.Join(s.contextDir(im), im.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				add(im, "Dockerfile %s: %v", df, errors.Unwrap(err))
			}
		}
	}
	if len(probs) == 0 {
		if _, err := s.Order(); err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", s.Path, err))
		}
	}
	return probs
}

func (s *Spec) contextDir(im *Image) string {
	if filepath.IsAbs(im.Context) {
		return im.Context
	}
	return filepath.Join(s.Dir, im.Context)
}

// Find returns the image with the given tag, or nil.
func (s *Spec) Find(tag string) *Image {
	for _, im := range s.Images {
		if im.Tag == tag {
			return im
		}
	}
	return nil
}

// Bases returns the images of the spec that im is built FROM (docker kind).
// Bases not listed in the spec (scratch, external images) are not returned.
func (s *Spec) Bases(im *Image) ([]*Image, error) {
	if im.Kind != KindDocker {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(s.contextDir(im), im.Dockerfile))
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, from := range dockerfileFroms(data, im.Args) {
		if b := s.Find(from); b != nil && b != im {
			out = append(out, b)
		}
	}
	return out, nil
}

// Order returns the images sorted so that every image comes after its bases;
// ties keep the spec order.
func (s *Spec) Order() ([]*Image, error) {
	deps := map[*Image][]*Image{}
	for _, im := range s.Images {
		b, err := s.Bases(im)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", im.Tag, err)
		}
		deps[im] = b
	}
	var out []*Image
	state := map[*Image]int{} // 1 visiting, 2 done
	var visit func(im *Image, path []string) error
	visit = func(im *Image, path []string) error {
		switch state[im] {
		case 1:
			return fmt.Errorf("images depend on each other in a cycle: %s", strings.Join(append(path, im.Tag), " -> "))
		case 2:
			return nil
		}
		state[im] = 1
		for _, d := range deps[im] {
			if err := visit(d, append(path, im.Tag)); err != nil {
				return err
			}
		}
		state[im] = 2
		out = append(out, im)
		return nil
	}
	for _, im := range s.Images {
		if err := visit(im, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Select returns the images named in only together with every image they are
// built from, in build order. An empty only selects everything.
func (s *Spec) Select(only []string) ([]*Image, error) {
	order, err := s.Order()
	if err != nil {
		return nil, err
	}
	if len(only) == 0 {
		return order, nil
	}
	want := map[*Image]bool{}
	var mark func(im *Image) error
	mark = func(im *Image) error {
		if want[im] {
			return nil
		}
		want[im] = true
		bases, err := s.Bases(im)
		if err != nil {
			return err
		}
		for _, b := range bases {
			if err := mark(b); err != nil {
				return err
			}
		}
		return nil
	}
	var unknown []string
	for _, tag := range only {
		im := s.Find(tag)
		if im == nil {
			unknown = append(unknown, tag)
			continue
		}
		if err := mark(im); err != nil {
			return nil, err
		}
	}
	if len(unknown) > 0 {
		var tags []string
		for _, im := range s.Images {
			tags = append(tags, im.Tag)
		}
		return nil, fmt.Errorf("unknown image %s; the spec lists: %s", strings.Join(unknown, ", "), strings.Join(tags, ", "))
	}
	var out []*Image
	for _, im := range order {
		if want[im] {
			out = append(out, im)
		}
	}
	return out, nil
}

// dockerfileFroms returns the image names of a Dockerfile's FROM lines with
// ARG defaults and build args substituted. Stage names are skipped.
func dockerfileFroms(data []byte, args map[string]string) []string {
	vars := map[string]string{}
	stages := map[string]bool{}
	var out []string
	for _, line := range logicalLines(data) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ARG":
			name, def, hasDef := strings.Cut(f[1], "=")
			if v, ok := args[name]; ok {
				vars[name] = v
			} else if hasDef {
				vars[name] = strings.Trim(def, `"'`)
			}
		case "FROM":
			i := 1
			for i < len(f) && strings.HasPrefix(f[i], "--") {
				i++
			}
			if i >= len(f) {
				continue
			}
			ref := os.Expand(f[i], func(k string) string { return vars[k] })
			if len(f) >= i+3 && strings.EqualFold(f[i+1], "AS") {
				stages[strings.ToLower(f[i+2])] = true
			}
			if !stages[strings.ToLower(ref)] {
				out = append(out, ref)
			}
		}
	}
	return out
}

// logicalLines joins backslash continuations and drops comments.
func logicalLines(data []byte) []string {
	var out []string
	var cur strings.Builder
	for _, raw := range bytes.Split(data, []byte("\n")) {
		l := strings.TrimSpace(string(raw))
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
