package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailchaos/mailchaos/harness/images"
)

const referenceImages = "../fixtures/stacks/reference/images.yaml"

func envTrue(name string) bool {
	v := os.Getenv(name)
	return v == "1" || v == "true" || v == "yes"
}

// coldImages measures a cold build of the stack images without touching the
// tags other runs use: every non-Debian image of images.yaml is built under
// a temporary tag, with `docker build --no-cache`, on top of the existing
// Debian bases (debootstrap of the bases is not re-run; the Go build cache
// is warm). The temporary tags are removed afterwards. MAILCHAOS_BENCH_COLD=0
// skips it.
func coldImages(t *testing.T) string {
	if os.Getenv("MAILCHAOS_BENCH_COLD") == "0" {
		return "skipped (MAILCHAOS_BENCH_COLD=0)"
	}
	spec, err := images.Load(referenceImages)
	if err != nil {
		t.Fatal(err)
	}
	// A self image (toxiproxy) copies the mailchaos binary, not this test
	// binary: make bench-up builds bin/mailchaos first.
	self, _ := filepath.Abs("../bin/mailchaos")
	if _, err := os.Stat(self); err != nil {
		kept := spec.Images[:0]
		for _, im := range spec.Images {
			if im.Kind != images.KindSelf {
				kept = append(kept, im)
			}
		}
		spec.Images = kept
	}
	suffix := "-bench-" + strings.ToLower(NewRunID()[16:])
	var tags []string
	for _, im := range spec.Images {
		if im.Kind == images.KindDebian {
			continue
		}
		im.Tag += suffix
		tags = append(tags, im.Tag)
	}
	// A docker wrapper that turns the build cache off.
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "docker")
	script := "#!/bin/sh\nif [ \"$1\" = build ]; then shift; exec docker build --no-cache \"$@\"; fi\nexec docker \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		args := append([]string{"rmi"}, tags...)
		if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			t.Logf("remove bench tags: %v\n%s", err, out)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := images.Build(ctx, spec, images.Options{Docker: wrapper, Progress: io.Discard, Jobs: 2, Self: self})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("cold image build: %v", err)
	}
	built := 0
	for _, r := range res {
		if r.Status == images.StatusBuilt {
			built++
		}
	}
	return fmt.Sprintf("%.1f (%d stack images, docker build --no-cache, Debian bases kept)", took.Seconds(), built)
}
