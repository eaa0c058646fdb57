package images

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// recipe versions the build recipes themselves: bump it when the way an image
// is produced changes, so every image rebuilds once.
const recipe = "mailchaos-images/1"

// GoInfo is what a go image depends on besides its spec entry.
type GoInfo struct {
	// GoVersion is the toolchain, e.g. go1.26.8.
	GoVersion string
	// Platform is GOOS/GOARCH of the binary.
	Platform string
	// Modules lists path@version of every module the package links.
	Modules []string
	// Sources lists "path sha256" of every Go file the package links from
	// the main module: it has no version, so its files are the version.
	Sources []string
}

// GoResolver reports the GoInfo of a go image; Build runs the go command.
type GoResolver func(im *Image) (GoInfo, error)

// SelfResolver reports the SHA-256 (hex) of the binary a self image copies.
type SelfResolver func(im *Image) (string, error)

// Inputs resolves what an image's hash covers besides its spec entry and
// files of the spec's folder. Go is only called for go images, Self only
// for self images.
type Inputs struct {
	Go   GoResolver
	Self SelfResolver
}

// Hashes returns the content hash of every image in the spec, keyed by tag.
// An image's hash covers its own inputs and the hashes of its bases, so a
// change propagates to every image built FROM it.
func (s *Spec) Hashes(in Inputs) (map[string]string, error) {
	order, err := s.Order()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, im := range order {
		h := sha256.New()
		line := func(parts ...string) { fmt.Fprintln(h, strings.Join(parts, "\x00")) }
		line("recipe", recipe)
		line("kind", string(im.Kind))
		switch im.Kind {
		case KindDebian:
			line("suite", im.Suite)
			pk := append([]string(nil), im.Packages...)
			sort.Strings(pk)
			line("packages", strings.Join(pk, ","))
			hashConfig(line, im)
		case KindGo:
			if in.Go == nil {
				return nil, fmt.Errorf("image %q: no Go resolver", im.Tag)
			}
			gi, err := in.Go(im)
			if err != nil {
				return nil, fmt.Errorf("image %q: %w", im.Tag, err)
			}
			line("package", im.Package)
			line("binary", im.Binary)
			line("ldflags", im.Ldflags)
			line("go", gi.GoVersion, gi.Platform)
			mods := append([]string(nil), gi.Modules...)
			sort.Strings(mods)
			for _, m := range mods {
				line("module", m)
			}
			srcs := append([]string(nil), gi.Sources...)
			sort.Strings(srcs)
			for _, src := range srcs {
				line("source", src)
			}
			hashConfig(line, im)
		case KindSelf:
			if in.Self == nil {
				return nil, fmt.Errorf("image %q: no self resolver", im.Tag)
			}
			sum, err := in.Self(im)
			if err != nil {
				return nil, fmt.Errorf("image %q: %w", im.Tag, err)
			}
			// The binary's bytes are its version: any change to the
			// program, its modules or its toolchain rebuilds the image.
			line("binary", im.Binary)
			line("self", sum)
			hashConfig(line, im)
		case KindDocker:
			line("dockerfile", im.Dockerfile)
			for _, k := range sortedKeys(im.Args) {
				line("arg", k, im.Args[k])
			}
			df, err := os.ReadFile(filepath.Join(s.contextDir(im), im.Dockerfile))
			if err != nil {
				return nil, fmt.Errorf("image %q: %w", im.Tag, err)
			}
			for _, from := range dockerfileFroms(df, im.Args) {
				if b := s.Find(from); b != nil {
					line("base", from, out[from])
				} else {
					line("from", from)
				}
			}
			if err := hashTree(h, s.contextDir(im)); err != nil {
				return nil, fmt.Errorf("image %q: %w", im.Tag, err)
			}
		}
		out[im.Tag] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

func hashConfig(line func(...string), im *Image) {
	for _, k := range sortedKeys(im.Env) {
		line("env", k, im.Env[k])
	}
	line(append([]string{"cmd"}, im.Cmd...)...)
	for _, p := range im.Expose {
		line("expose", fmt.Sprint(p))
	}
}

// hashTree hashes every file of a build context: relative path, whether it is
// executable (the only mode bit that survives git checkouts reliably), and
// content. Symlinks hash their target.
func hashTree(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "link\x00%s\x00%s\n", rel, t)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "file\x00%s\x00%t\x00%x\n", rel, fi.Mode()&0o111 != 0, fh.Sum(nil))
		}
	}
	return nil
}
