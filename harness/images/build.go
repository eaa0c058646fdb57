package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Mode selects how debian base images are made.
type Mode string

// Debian base build modes.
const (
	// ModeAuto pulls debian:<suite>-slim when a registry answers within the
	// pull timeout, otherwise runs debootstrap.
	ModeAuto Mode = "auto"
	// ModePull only uses the registry.
	ModePull Mode = "pull"
	// ModeDebootstrap only uses debootstrap on the host (root).
	ModeDebootstrap Mode = "debootstrap"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModePull, ModeDebootstrap:
		return m, nil
	case "":
		return ModeAuto, nil
	}
	return "", fmt.Errorf("unknown mode %q; known modes: auto, pull, debootstrap", s)
}

// Options tune Build. The zero value builds everything in auto mode.
type Options struct {
	// Mode chooses how debian bases are made (default auto).
	Mode Mode
	// Only restricts the build to these tags and the images they are built from.
	Only []string
	// Jobs is how many images build at once (default 2).
	Jobs int
	// PullTimeout bounds the registry attempt in auto mode (default 20s).
	PullTimeout time.Duration
	// ImageTimeout bounds the build of one image (default 30m).
	ImageTimeout time.Duration
	// Progress receives one line per image state change (default os.Stderr).
	Progress io.Writer
	// Docker is the docker CLI (default "docker").
	Docker string
	// Go is the go command used for go images (default "go").
	Go string
	// Self is the binary self images copy: a static Linux executable
	// (default: the running program, os.Executable).
	Self string
	// WorkDir holds temporary root file systems (default /var/tmp).
	WorkDir string
	// CacheDir keeps downloaded .deb files between builds
	// (default <user cache dir>/mailchaos/debootstrap; "-" disables).
	CacheDir string
	// Force rebuilds even when the hash matches.
	Force bool
}

// Status is what Build did with one image.
type Status string

// Build outcomes.
const (
	StatusBuilt   Status = "built"
	StatusSkipped Status = "skipped"
	StatusFailed  Status = "failed"
)

// Result reports one image of a Build.
type Result struct {
	Tag     string
	Hash    string
	Status  Status
	Method  string // debootstrap, pull, go, docker, self; empty when skipped
	Elapsed time.Duration
	Err     error
}

func (o *Options) defaults() {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.Jobs <= 0 {
		o.Jobs = 2
	}
	if o.PullTimeout <= 0 {
		o.PullTimeout = 20 * time.Second
	}
	if o.ImageTimeout <= 0 {
		o.ImageTimeout = 30 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.Docker == "" {
		o.Docker = "docker"
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.WorkDir == "" {
		o.WorkDir = "/var/tmp"
	}
	if o.CacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			o.CacheDir = d + "/mailchaos/debootstrap"
		} else {
			o.CacheDir = "-"
		}
	}
}

// Build builds the images of the spec in dependency order, skipping those
// whose tag already carries their content hash. It returns one Result per
// selected image and an error joining every failure, each wrapped as
// "build <tag>: ...".
func Build(ctx context.Context, s *Spec, opts Options) ([]Result, error) {
	opts.defaults()
	b := &builder{spec: s, opts: opts}
	if err := b.checkDocker(ctx); err != nil {
		return nil, err
	}
	sel, err := b.plan(ctx)
	if err != nil {
		return nil, err
	}
	return b.run(ctx, sel)
}

// Planned is one image of a Plan.
type Planned struct {
	// Image is the spec's entry.
	Image *Image
	// Hash is the content hash the image's mailchaos.hash label must carry.
	Hash string
	// From says in a few words what the image is built from.
	From string
}

// Plan resolves, without Docker, what Build would do with the same spec and
// options: the selected images in build order, each with its content hash
// and its source. It fails where Build would before building anything (a
// missing build context, a go image outside its module, a self image whose
// binary is not static).
func Plan(ctx context.Context, s *Spec, opts Options) ([]Planned, error) {
	opts.defaults()
	b := &builder{spec: s, opts: opts}
	sel, err := b.plan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Planned, len(sel))
	for i, im := range sel {
		out[i] = Planned{Image: im, Hash: b.hashes[im.Tag], From: b.from(im)}
	}
	return out, nil
}

type builder struct {
	spec   *Spec
	opts   Options
	hashes map[string]string
	self   selfBinary
	mu     sync.Mutex // serialises progress lines
}

// plan selects the images and computes every image's hash.
func (b *builder) plan(ctx context.Context) ([]*Image, error) {
	sel, err := b.spec.Select(b.opts.Only)
	if err != nil {
		return nil, err
	}
	hashes, err := b.spec.Hashes(Inputs{
		Go:   func(im *Image) (GoInfo, error) { return b.goInfo(ctx, im) },
		Self: func(*Image) (string, error) { return b.selfHash() },
	})
	if err != nil {
		return nil, fmt.Errorf("hash images: %w", err)
	}
	b.hashes = hashes
	return sel, nil
}

// from describes an image's source for Plan.
func (b *builder) from(im *Image) string {
	switch im.Kind {
	case KindDebian:
		how := "pull debian:" + im.Suite + "-slim, else debootstrap"
		switch b.opts.Mode {
		case ModePull:
			how = "pull debian:" + im.Suite + "-slim"
		case ModeDebootstrap:
			how = "debootstrap from " + b.spec.Mirror
		}
		return fmt.Sprintf("Debian %s + %d packages (%s)", im.Suite, len(im.Packages), how)
	case KindGo:
		root, _ := b.moduleRoot()
		return fmt.Sprintf("go build %s in %s, as /%s", im.Package, root, im.Binary)
	case KindSelf:
		return fmt.Sprintf("%s (%s, static), as /%s", b.self.path, b.self.platform, im.Binary)
	case KindDocker:
		var froms []string
		if df, err := os.ReadFile(filepath.Join(b.spec.contextDir(im), im.Dockerfile)); err == nil {
			froms = dockerfileFroms(df, im.Args)
		}
		return fmt.Sprintf("%s FROM %s", b.spec.contextDir(im), strings.Join(froms, ", "))
	}
	return ""
}

func (b *builder) progress(format string, a ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.opts.Progress, "images: "+format+"\n", a...)
}

// run builds sel (already in dependency order) with at most Jobs in parallel;
// an image starts when all its bases are done.
func (b *builder) run(ctx context.Context, sel []*Image) ([]Result, error) {
	done := map[string]chan struct{}{}
	results := make([]Result, len(sel))
	for _, im := range sel {
		done[im.Tag] = make(chan struct{})
	}
	sem := make(chan struct{}, b.opts.Jobs)
	var wg sync.WaitGroup
	for i, im := range sel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[im.Tag])
			r := &results[i]
			r.Tag, r.Hash = im.Tag, b.hashes[im.Tag]
			bases, _ := b.spec.Bases(im)
			for _, base := range bases {
				ch, ok := done[base.Tag]
				if !ok {
					continue
				}
				select {
				case <-ch:
				case <-ctx.Done():
				}
				for j := range sel {
					if sel[j].Tag == base.Tag && results[j].Status == StatusFailed {
						r.Status, r.Err = StatusFailed, fmt.Errorf("build %s: base %s failed", im.Tag, base.Tag)
						return
					}
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.Status, r.Err = StatusFailed, fmt.Errorf("build %s: %w", im.Tag, ctx.Err())
				return
			}
			defer func() { <-sem }()
			*r = b.one(ctx, im)
		}()
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return results, errors.Join(errs...)
}

// one checks and, if needed, builds a single image.
func (b *builder) one(ctx context.Context, im *Image) Result {
	start := time.Now()
	hash := b.hashes[im.Tag]
	r := Result{Tag: im.Tag, Hash: hash}
	if err := ctx.Err(); err != nil {
		r.Status, r.Err = StatusFailed, fmt.Errorf("build %s: %w", im.Tag, err)
		return r
	}
	if !b.opts.Force {
		if have, _ := b.imageHash(ctx, im.Tag); have == hash {
			r.Status, r.Elapsed = StatusSkipped, time.Since(start)
			b.progress("%-28s skipped, up to date (hash %.12s, %s)", im.Tag, hash, round(r.Elapsed))
			return r
		}
	}
	ictx, cancel := context.WithTimeout(ctx, b.opts.ImageTimeout)
	defer cancel()
	oldID, _ := b.imageID(ctx, im.Tag)
	b.progress("%-28s building (%s, hash %.12s)", im.Tag, im.Kind, hash)
	var err error
	switch im.Kind {
	case KindDebian:
		r.Method, err = b.buildDebian(ictx, im, hash)
	case KindGo:
		r.Method, err = "go", b.buildGo(ictx, im, hash)
	case KindDocker:
		r.Method, err = "docker", b.buildDocker(ictx, im, hash)
	case KindSelf:
		r.Method, err = "self", b.buildSelf(ictx, im, hash)
	default:
		err = fmt.Errorf("unknown kind %q", im.Kind)
	}
	if err == nil {
		var have string
		have, err = b.imageHash(ctx, im.Tag)
		if err == nil && have != hash {
			err = fmt.Errorf("built image carries %s=%q, want %q", HashLabel, have, hash)
		}
	}
	r.Elapsed = time.Since(start)
	if err != nil {
		if ictx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("gave up after %s (Options.ImageTimeout): %w", b.opts.ImageTimeout, err)
		}
		r.Status, r.Err = StatusFailed, fmt.Errorf("build %s: %w", im.Tag, err)
		b.progress("%-28s FAILED after %s", im.Tag, round(r.Elapsed))
		return r
	}
	r.Status = StatusBuilt
	b.progress("%-28s built in %s (%s)", im.Tag, round(r.Elapsed), r.Method)
	if oldID != "" {
		b.removeDangling(ctx, oldID)
	}
	return r
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
