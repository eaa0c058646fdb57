package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// defaultPath is set on imported root file systems, which carry no config.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildDebian makes a Debian base image by pull or debootstrap, per Mode.
func (b *builder) buildDebian(ctx context.Context, im *Image, hash string) (string, error) {
	if b.opts.Mode != ModeDebootstrap {
		err := b.pullDebian(ctx, im, hash)
		if err == nil {
			return "pull", nil
		}
		if b.opts.Mode == ModePull || ctx.Err() != nil {
			return "pull", err
		}
		b.progress("%-28s no registry (%s); using debootstrap", im.Tag, oneLine(err))
	}
	return "debootstrap", b.debootstrap(ctx, im, hash)
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// pullDebian builds FROM debian:<suite>-slim; this is the only recipe whose
// RUN step uses the network (apt-get), and it only runs where a registry
// answered.
func (b *builder) pullDebian(ctx context.Context, im *Image, hash string) error {
	ref := "debian:" + im.Suite + "-slim"
	if _, err := command(ctx, nil, nil, b.opts.Docker, "image", "inspect", "--format", "{{.Id}}", ref); err != nil {
		pctx, cancel := context.WithTimeout(ctx, b.opts.PullTimeout)
		_, err := command(pctx, nil, nil, b.opts.Docker, "pull", ref)
		cancel()
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
	}
	dir, err := os.MkdirTemp("", "mailchaos-debian-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var df strings.Builder
	fmt.Fprintf(&df, "FROM %s\n", ref)
	if len(im.Packages) > 0 {
		fmt.Fprintf(&df, "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s && %s\n",
			strings.Join(im.Packages, " "), cleanupShell)
	}
	for _, c := range b.imageChanges(im) {
		df.WriteString(c + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		return err
	}
	return b.dockerBuild(ctx, im.Tag, hash, dir, filepath.Join(dir, "Dockerfile"), nil, true)
}

// cleanupShell trims what an image never needs; debootstrap trees get the same.
const cleanupShell = "apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/log/*.log /var/log/apt/*"

// imageChanges are the Dockerfile instructions that set the image config.
func (b *builder) imageChanges(im *Image) []string {
	env := map[string]string{"PATH": defaultPath, "LANG": "C.UTF-8"}
	for k, v := range im.Env {
		env[k] = v
	}
	var out []string
	for _, k := range sortedKeys(env) {
		out = append(out, fmt.Sprintf("ENV %s=%s", k, env[k]))
	}
	cmd := im.Cmd
	if len(cmd) == 0 {
		cmd = []string{"bash"}
	}
	out = append(out, "CMD "+jsonArray(cmd))
	return out
}

// debootstrap builds the root file system on the host and imports it.
func (b *builder) debootstrap(ctx context.Context, im *Image, hash string) error {
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/debootstrap"); serr == nil {
			bin = "/usr/sbin/debootstrap"
		} else {
			return errors.New("debootstrap not found and no registry answered: install it (apt-get install debootstrap, or make tools)")
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("debootstrap needs root and no registry answered: run as root (sudo make images)")
	}
	tmp, root, err := makeRootfsDir(b.opts.WorkDir, im.Suite)
	if err != nil {
		return err
	}
	defer func() {
		if err := removeRootfs(tmp); err != nil {
			b.progress("%-28s could not remove %s: %v", im.Tag, tmp, err)
		}
	}()
	cache := ""
	if b.opts.CacheDir != "-" {
		c := filepath.Join(b.opts.CacheDir, im.Suite)
		if err := os.MkdirAll(c, 0o755); err == nil {
			cache = c
		}
	}
	if _, err := command(ctx, nil, nil, bin, debootstrapArgs(im, root, b.spec.Mirror, cache)...); err != nil {
		return err
	}
	if err := trimRootfs(root, im.Suite, b.spec.Mirror); err != nil {
		return fmt.Errorf("trim root file system: %w", err)
	}
	return b.importRootfs(ctx, root, im, hash)
}

// makeRootfsDir makes the folder a debootstrap tree is built in: a private
// (0700) temporary folder under workDir holding rootfs, the tree's root, at
// mode 0755 whatever the umask. The root must be 0755 as plain debootstrap
// makes it: inside the chroot it is "/", and a maintainer script that drops
// root privileges cannot reach /etc/passwd through a 0700 "/". The temporary
// folder itself is 0700 (os.MkdirTemp), which no process in the chroot ever
// traverses. Debootstrapping straight into the os.MkdirTemp folder made
// exim4-config's post-install fail: its `exim -C <new config> -bV` check
// drops privileges, and every user the configuration names was "not found".
func makeRootfsDir(workDir, suite string) (tmp, root string, err error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return "", "", err
	}
	tmp, err = os.MkdirTemp(workDir, "mailchaos-rootfs-"+suite+"-")
	if err != nil {
		return "", "", err
	}
	root = filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", "", err
	}
	// Mkdir's mode is filtered by the umask; the root's mode must not be.
	if err := os.Chmod(root, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", "", err
	}
	return tmp, root, nil
}

// debootstrapArgs are the arguments of the debootstrap run that makes im's
// tree in root; cache is the .deb cache folder ("" for none).
func debootstrapArgs(im *Image, root, mirror, cache string) []string {
	args := []string{"--variant=minbase"}
	if len(im.Packages) > 0 {
		args = append(args, "--include="+strings.Join(im.Packages, ","))
	}
	if cache != "" {
		args = append(args, "--cache-dir="+cache)
	}
	return append(args, im.Suite, root, mirror)
}

// trimRootfs removes caches and documentation and leaves a usable apt setup.
func trimRootfs(dir, suite, mirror string) error {
	for _, g := range []string{
		"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
		"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*",
		"var/log/*.log", "var/log/apt/*", "etc/resolv.conf", "etc/hostname",
	} {
		matches, _ := filepath.Glob(filepath.Join(dir, g))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	sources := fmt.Sprintf("deb %s %s main\n", mirror, suite)
	return os.WriteFile(filepath.Join(dir, "etc/apt/sources.list"), []byte(sources), 0o644)
}

// importRootfs streams the tree into docker import with the image config.
func (b *builder) importRootfs(ctx context.Context, dir string, im *Image, hash string) error {
	tar := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", dir, "-c", ".")
	tar.Cancel = func() error { return tar.Process.Signal(syscall.SIGTERM) }
	tar.WaitDelay = 5 * time.Second
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	var tarErr strings.Builder
	tar.Stderr = &tarErr
	if err := tar.Start(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	args := []string{"import", "--change", "LABEL " + HashLabel + "=" + hash}
	for _, c := range b.imageChanges(im) {
		args = append(args, "--change", c)
	}
	args = append(args, "-", im.Tag)
	_, ierr := command(ctx, nil, pipe, b.opts.Docker, args...)
	if ierr != nil {
		_, _ = io.Copy(io.Discard, pipe)
	}
	terr := tar.Wait()
	if ierr != nil {
		return ierr
	}
	if terr != nil {
		return fmt.Errorf("tar: %w%s", terr, tail(tarErr.String(), 5))
	}
	return nil
}

// removeRootfs deletes a debootstrap tree, first unmounting anything an
// interrupted debootstrap left mounted inside it (proc, sys, dev binds), so
// the removal can never reach into the host's /proc or /dev.
func removeRootfs(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
	if left, _ := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("still mounted, not removing: %s", strings.Join(left, ", "))
	}
	return os.RemoveAll(dir)
}

func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}
