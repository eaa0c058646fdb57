package flow

import (
	"context"
	"os/exec"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/harness"
)

// Fact is a name and a value found on the running stack.
type Fact struct{ Name, Value string }

// ImageRef is the image a service ran, with its ID when Docker knows it.
type ImageRef struct{ Service, Ref, ID string }

// versionProbes are the commands tried, per role, to read the version of
// the software a container runs. They are best effort: a stack of other
// software just shows fewer facts; nothing depends on them.
var versionProbes = map[string][]struct{ name, cmd string }{
	"mta":     {{"postfix", "postconf -h mail_version"}},
	"standby": {{"postfix", "postconf -h mail_version"}},
	"store":   {{"dovecot", "dovecot --version"}},
	"edge":    {{"haproxy", "haproxy -v | head -n1"}},
}

// StackFacts reads the images and software versions of the running stack.
// Every probe is bounded; failures are skipped.
func StackFacts(ctx context.Context, env *harness.Env) (images []ImageRef, software []Fact) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, n := range env.Nodes() {
		images = append(images, ImageRef{Service: n.Name(), Ref: n.Image(), ID: imageID(ctx, n.Image())})
		for _, p := range versionProbes[n.Role()] {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			code, out, err := n.Exec(pctx, []string{"sh", "-c", p.cmd})
			cancel()
			if err == nil && code == 0 {
				if v := strings.TrimSpace(out); v != "" {
					software = append(software, Fact{Name: p.name + " (" + n.Name() + ")", Value: firstLine(v)})
				}
			}
		}
	}
	return images, software
}

func imageID(ctx context.Context, ref string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}
