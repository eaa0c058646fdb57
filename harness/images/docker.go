package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// command runs name with args, feeding stdin, and returns its combined
// output. On failure the error carries the last lines of that output.
func command(ctx context.Context, env []string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Let the tool clean up (debootstrap unmounts, docker removes its
	// intermediate container) before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", err
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%s)", ctx.Err(), err)
		}
		return out.String(), fmt.Errorf("%s %s: %w%s", filepath.Base(name), firstArg(args), err, tail(out.String(), 15))
	}
	return out.String(), nil
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// tail formats the last n lines of out for an error message.
func tail(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n    | " + strings.Join(lines, "\n    | ")
}

// checkDocker turns "no CLI" and "no engine" into one line with the fix.
func (b *builder) checkDocker(ctx context.Context) error {
	if _, err := exec.LookPath(b.opts.Docker); err != nil {
		return fmt.Errorf("build images: docker CLI %q not found in PATH: install it (apt-get install docker.io) or set DOCKER", b.opts.Docker)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := command(cctx, nil, nil, b.opts.Docker, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		cause := strings.TrimSpace(out)
		if i := strings.IndexByte(cause, '\n'); i >= 0 {
			cause = cause[:i]
		}
		if cause == "" {
			cause = err.Error()
		}
		return fmt.Errorf("build images: no Docker engine reachable (%s): start it (systemctl start docker) or point DOCKER_HOST at one", cause)
	}
	return nil
}

// imageHash returns the mailchaos.hash label of tag, or "" if the image is absent.
func (b *builder) imageHash(ctx context.Context, tag string) (string, error) {
	out, err := command(ctx, nil, nil, b.opts.Docker, "image", "inspect", "--format",
		`{{index .Config.Labels "`+HashLabel+`"}}`, tag)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

func (b *builder) imageID(ctx context.Context, tag string) (string, error) {
	out, err := command(ctx, nil, nil, b.opts.Docker, "image", "inspect", "--format", "{{.Id}}", tag)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// removeDangling removes the image a rebuild replaced if nothing else uses
// it, so repeated builds do not fill the disk. Failures are ignored: the old
// image may still back a running container.
func (b *builder) removeDangling(ctx context.Context, oldID string) {
	out, err := command(ctx, nil, nil, b.opts.Docker, "image", "inspect", "--format", "{{len .RepoTags}}", oldID)
	if err != nil || strings.TrimSpace(out) != "0" {
		return
	}
	_, _ = command(ctx, nil, nil, b.opts.Docker, "image", "rm", oldID)
}

// dockerBuild runs the classic builder (it never pulls an image that exists
// locally, which BuildKit may try to do) with networking off.
func (b *builder) dockerBuild(ctx context.Context, tag, hash, dir, dockerfile string, args map[string]string, network bool) error {
	a := []string{"build", "--tag", tag, "--label", HashLabel + "=" + hash, "--file", dockerfile, "--rm", "--force-rm"}
	if !network {
		a = append(a, "--network", "none")
	}
	for _, k := range sortedKeys(args) {
		a = append(a, "--build-arg", k+"="+args[k])
	}
	a = append(a, dir)
	_, err := command(ctx, []string{"DOCKER_BUILDKIT=0"}, nil, b.opts.Docker, a...)
	return err
}

func (b *builder) buildDocker(ctx context.Context, im *Image, hash string) error {
	dir := b.spec.contextDir(im)
	return b.dockerBuild(ctx, im.Tag, hash, dir, filepath.Join(dir, im.Dockerfile), im.Args, false)
}

// moduleRoot finds the go.mod that governs the spec's folder.
func (b *builder) moduleRoot() (string, error) {
	dir := b.spec.Dir
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s: go images build from the module that holds the spec", b.spec.Dir)
		}
		dir = parent
	}
}

func (b *builder) goEnv() []string {
	return []string{"CGO_ENABLED=0", "GOFLAGS=-mod=readonly"}
}

// goInfo asks the go command which toolchain and module versions the package
// would be built with.
func (b *builder) goInfo(ctx context.Context, im *Image) (GoInfo, error) {
	root, err := b.moduleRoot()
	if err != nil {
		return GoInfo{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	goCmd := func(args ...string) (string, error) {
		cmd := exec.CommandContext(cctx, b.opts.Go, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), b.goEnv()...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("go command %q not found: install Go or set GO", b.opts.Go)
		}
		if err != nil {
			return "", fmt.Errorf("go %s: %w%s", args[0], err, tail(stderr.String(), 10))
		}
		return string(out), nil
	}
	out, err := goCmd("env", "GOVERSION", "GOOS", "GOARCH")
	if err != nil {
		return GoInfo{}, err
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		return GoInfo{}, fmt.Errorf("go env: unexpected output %q", out)
	}
	gi := GoInfo{GoVersion: f[0], Platform: f[1] + "/" + f[2]}
	out, err = goCmd("list", "-deps", "-f", "{{with .Module}}{{.Path}}@{{.Version}}{{end}}", im.Package)
	if err != nil {
		return GoInfo{}, err
	}
	seen := map[string]bool{}
	for _, m := range strings.Fields(out) {
		if !seen[m] {
			seen[m] = true
			gi.Modules = append(gi.Modules, m)
		}
	}
	sort.Strings(gi.Modules)
	// Packages of the main module carry no version: hash their files, so a
	// change to our own code (a toxic, say) rebuilds the image.
	out, err = goCmd("list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`, im.Package)
	if err != nil {
		return GoInfo{}, err
	}
	for _, path := range strings.Fields(out) {
		data, err := os.ReadFile(path)
		if err != nil {
			return GoInfo{}, fmt.Errorf("hash %s: %w", path, err)
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			rel = path
		}
		sum := sha256.Sum256(data)
		gi.Sources = append(gi.Sources, filepath.ToSlash(rel)+" "+hex.EncodeToString(sum[:]))
	}
	sort.Strings(gi.Sources)
	return gi, nil
}

// buildGo compiles the package statically and wraps it in a scratch image.
func (b *builder) buildGo(ctx context.Context, im *Image, hash string) error {
	root, err := b.moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mailchaos-goimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, b.opts.Go, "build", "-trimpath", "-ldflags", im.Ldflags,
		"-o", filepath.Join(dir, im.Binary), im.Package)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), b.goEnv()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w%s", im.Package, err, tail(string(out), 15))
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(scratchDockerfile(im)), 0o644); err != nil {
		return err
	}
	return b.dockerBuild(ctx, im.Tag, hash, dir, filepath.Join(dir, "Dockerfile"), nil, false)
}

// scratchDockerfile puts the binary im.Binary of the build context into an
// empty image as its entrypoint (go and self kinds).
func scratchDockerfile(im *Image) string {
	var df strings.Builder
	df.WriteString("FROM scratch\n")
	fmt.Fprintf(&df, "COPY %s /%s\n", im.Binary, im.Binary)
	for _, k := range sortedKeys(im.Env) {
		fmt.Fprintf(&df, "ENV %s=%q\n", k, im.Env[k])
	}
	for _, p := range im.Expose {
		fmt.Fprintf(&df, "EXPOSE %d\n", p)
	}
	fmt.Fprintf(&df, "ENTRYPOINT [%q]\n", "/"+im.Binary)
	if len(im.Cmd) > 0 {
		fmt.Fprintf(&df, "CMD %s\n", jsonArray(im.Cmd))
	}
	return df.String()
}

func jsonArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
