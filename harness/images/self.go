package images

// Why a self image, for the toxiproxy image of the reference stack: the
// image must build where mailchaos was installed with `go install`, with no
// checkout. A go image cannot: it runs `go build` of a package of the
// module that holds the spec. Building it instead from the module cache (a
// temporary module requiring mailchaos at the version the binary reports)
// needs a Go toolchain on the host and the module proxy for every module
// the server links but the binary did not, and a (devel) build has no
// version to require. The running binary already holds the server
// (faults/toxiserver): copying it is offline, needs no toolchain, and the
// image runs exactly the code that drives it. In a checkout, `make images`
// copies bin/mailchaos, which the Makefile builds static.

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// selfBinary is the binary self images copy, checked and hashed once.
type selfBinary struct {
	once     sync.Once
	path     string // symlinks resolved
	platform string // linux/<arch>
	sum      string // SHA-256, hex
	err      error
}

// selfHash checks the binary of Options.Self (default the running program)
// and returns its SHA-256.
func (b *builder) selfHash() (string, error) {
	s := &b.self
	s.once.Do(func() { s.err = s.resolve(b.opts.Self) })
	return s.sum, s.err
}

func (s *selfBinary) resolve(path string) error {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the running program to copy into the image: %w (set Options.Self)", err)
		}
		path = exe
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	s.path = path
	platform, err := staticLinux(path)
	if err != nil {
		return err
	}
	s.platform = platform
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	s.sum = hex.EncodeToString(h.Sum(nil))
	return nil
}

// staticLinux checks that path is a Linux ELF executable that needs no
// dynamic loader (a FROM scratch image has none) and returns its platform.
func staticLinux(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a Linux executable (%v): a FROM scratch image runs a static Linux binary: %s", path, err, rebuildHint(path, "GOOS=linux CGO_ENABLED=0"))
	}
	defer f.Close()
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("%s is an ELF binary for %s, not Linux: %s", path, f.OSABI, rebuildHint(path, "GOOS=linux CGO_ENABLED=0"))
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
		return "", fmt.Errorf("%s is dynamically linked (it needs the loader %s), so it cannot run in a FROM scratch image: %s",
			path, strings.TrimRight(string(interp), "\x00"), rebuildHint(path, "CGO_ENABLED=0"))
	}
	if bi, err := buildinfo.ReadFile(path); err == nil {
		for _, st := range bi.Settings {
			if st.Key == "GOOS" && st.Value != "linux" {
				return "", fmt.Errorf("%s is built for %s, not Linux: %s", path, st.Value, rebuildHint(path, "GOOS=linux CGO_ENABLED=0"))
			}
		}
	}
	return "linux/" + goarch(f.Machine), nil
}

// rebuildHint says how to get a binary that fits: for a Go program the
// command that reinstalls or rebuilds it with env set.
func rebuildHint(path, env string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil || bi.Path == "" {
		return "give a static Linux build (for Go: " + env + " go build) as the self binary (Options.Self; mailchaos images --self)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return fmt.Sprintf("reinstall it with %s go install %s@%s", env, bi.Path, v)
	}
	return fmt.Sprintf("rebuild it with %s go build -o %s %s", env, path, bi.Path)
}

func goarch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_386:
		return "386"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_PPC64:
		return "ppc64le"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_RISCV:
		return "riscv64"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "EM_"))
}

// buildSelf copies the binary into a scratch image as /<Binary>.
func (b *builder) buildSelf(ctx context.Context, im *Image, hash string) error {
	want, err := b.selfHash()
	if err != nil {
		return err
	}
	out, err := command(ctx, nil, nil, b.opts.Docker, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")
	if engine := strings.TrimSpace(out); err == nil && engine != b.self.platform {
		return fmt.Errorf("%s is a %s binary but the Docker engine runs %s images: give a %s build (GOOS, GOARCH and CGO_ENABLED=0 set for it) as the self binary (Options.Self; mailchaos images --self)",
			b.self.path, b.self.platform, engine, engine)
	}
	dir, err := os.MkdirTemp("", "mailchaos-selfimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	got, err := copyFile(b.self.path, filepath.Join(dir, im.Binary))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s changed while the images were built (reinstalled?): run the build again", b.self.path)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(scratchDockerfile(im)), 0o644); err != nil {
		return err
	}
	return b.dockerBuild(ctx, im.Tag, hash, dir, filepath.Join(dir, "Dockerfile"), nil, false)
}

// copyFile copies src to dst (mode 0755) and returns the SHA-256 of what it
// copied.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
