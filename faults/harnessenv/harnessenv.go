// Package harnessenv adapts a running *harness.Env to the small interfaces
// of package faults, which does not import the harness. Go has no
// covariant return types, so *harness.Env (whose Node returns
// *harness.Node) cannot satisfy faults.Env directly; the wrappers here are
// thin and add one capability: links that are published on the host (the
// client-facing endpoints) get a traffic probe, so a fault's effect and
// heal on them are observed, not assumed.
package harnessenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
)

// New returns e as a faults.Env.
func New(e *harness.Env) faults.Env { return &env{e: e} }

type env struct{ e *harness.Env }

var _ faults.Env = (*env)(nil)

func (v *env) Node(name string) (faults.Node, error) {
	n, err := v.e.Node(name)
	if err != nil {
		return nil, err
	}
	return v.node(n), nil
}

func (v *env) Nodes() []faults.Node {
	var out []faults.Node
	for _, n := range v.e.Nodes() {
		out = append(out, v.node(n))
	}
	return out
}

// node adds the declared image, so a rollback knows where to return.
type node struct {
	*harness.Node
	base string
}

var _ faults.BaseImager = node{}

// BaseImage returns the image the descriptor declares for the node.
func (n node) BaseImage() string { return n.base }

func (v *env) node(n *harness.Node) faults.Node {
	base := ""
	if s, ok := v.e.Descriptor().Services[n.Name()]; ok {
		base = s.Image
	}
	return node{Node: n, base: base}
}

func (v *env) Region(name string) (faults.Region, error) {
	r, err := v.e.Region(name)
	if err != nil {
		return nil, err
	}
	return region{r, v}, nil
}

func (v *env) Regions() []faults.Region {
	var out []faults.Region
	for _, r := range v.e.Regions() {
		out = append(out, region{r, v})
	}
	return out
}

func (v *env) Link(name string) (faults.Link, error) {
	l, err := v.e.Link(name)
	if err != nil {
		return nil, err
	}
	return v.link(l), nil
}

func (v *env) Links() []faults.Link {
	var out []faults.Link
	for _, l := range v.e.Links() {
		out = append(out, v.link(l))
	}
	return out
}

func (v *env) Edge() (faults.Edge, error) {
	e, err := v.e.Edge()
	if err != nil {
		return nil, err
	}
	return e, nil
}

// link wraps l; a link behind a client-facing endpoint also gets a probe.
func (v *env) link(l *harness.Link) faults.Link {
	base := &link{l: l}
	for ep, name := range v.e.Descriptor().Endpoints {
		if name == l.Name() {
			if addr, err := v.e.Endpoint(ep); err == nil {
				return &probedLink{link: base, addr: addr}
			}
		}
	}
	return base
}

// region adapts Nodes' element type.
type region struct {
	*harness.Region
	v *env
}

func (r region) Nodes() []faults.Node {
	var out []faults.Node
	for _, n := range r.Region.Nodes() {
		out = append(out, r.v.node(n))
	}
	return out
}

// link converts faults.Toxic to harness.Toxic.
type link struct{ l *harness.Link }

func (k *link) Name() string     { return k.l.Name() }
func (k *link) From() string     { return k.l.From() }
func (k *link) To() string       { return k.l.To() }
func (k *link) Listen() int      { return k.l.Listen() }
func (k *link) Upstream() string { return k.l.Upstream() }
func (k *link) AddToxic(ctx context.Context, t faults.Toxic) error {
	return k.l.AddToxic(ctx, harness.Toxic{Name: t.Name, Type: t.Type, Stream: t.Stream, Toxicity: t.Toxicity, Attributes: t.Attributes})
}
func (k *link) RemoveToxic(ctx context.Context, name string) error { return k.l.RemoveToxic(ctx, name) }
func (k *link) SetEnabled(ctx context.Context, on bool) error      { return k.l.SetEnabled(ctx, on) }

// probedLink is a link published on the host at addr.
type probedLink struct {
	*link
	addr string
}

var _ faults.Prober = (*probedLink)(nil)

// Probe connects through the link and reads the upstream's first line
// (client-facing mail protocols speak first). A refused or reset
// connection, an immediate close, or no line before ctx's deadline (at
// most 2s) means traffic does not pass.
func (p *probedLink) Probe(ctx context.Context) error {
	dl := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	d := net.Dialer{Deadline: dl}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return fmt.Errorf("probe %s: %w", p.Name(), err)
	}
	defer c.Close()
	_ = c.SetDeadline(dl)
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("probe %s: no banner: %w", p.Name(), err)
	}
	if strings.TrimSpace(line) == "" {
		return fmt.Errorf("probe %s: empty banner", p.Name())
	}
	return nil
}
