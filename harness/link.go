package harness

import (
	"context"
	"fmt"
	"strconv"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// Toxic is a Toxiproxy toxic: latency, bandwidth, slow_close, timeout,
// reset_peer, slicer, limit_data (see Toxiproxy's README for Attributes).
type Toxic struct {
	// Name identifies the toxic on its link; default <type>_<stream>.
	Name string
	// Type is the toxic type, e.g. "latency".
	Type string
	// Stream is "upstream" (client to server) or "downstream" (default).
	Stream string
	// Toxicity is the probability the toxic applies to a connection;
	// 0 is taken as 1 (always), as in Toxiproxy's own client.
	Toxicity float32
	// Attributes are the toxic's parameters, e.g. {"latency": 200, "jitter": 50}.
	Attributes map[string]any
}

// Link is the handle of one Toxiproxy proxy.
type Link struct {
	env  *Env
	spec LinkSpec
}

// Name returns the link name.
func (l *Link) Name() string { return l.spec.Name }

// From returns the link's client-side label.
func (l *Link) From() string { return l.spec.From }

// To returns the link's server-side label.
func (l *Link) To() string { return l.spec.To }

// Listen returns the port the link listens on inside the toxiproxy container.
func (l *Link) Listen() int { return l.spec.Listen }

// Upstream returns the link's "service:port".
func (l *Link) Upstream() string { return l.spec.Upstream }

// Addr returns the host address ("127.0.0.1:port") where the link's listen
// port is published: connecting there goes through the link like its
// from side does. Endpoints are such addresses.
func (l *Link) Addr() (string, error) {
	if l.env.proxy == nil {
		return "", fmt.Errorf("link %s: the stack is not up", l.spec.Name)
	}
	return l.env.proxy.Addr(linkPort(l.spec.Listen))
}

// linkPort names the toxiproxy container's published port of a listen port.
func linkPort(listen int) string { return "link-" + strconv.Itoa(listen) }

func (l *Link) proxy(ctx context.Context) (*toxiproxy.Proxy, error) {
	if l.env.tp == nil {
		return nil, fmt.Errorf("link %s: the stack is not up", l.spec.Name)
	}
	var p *toxiproxy.Proxy
	err := callCtx(ctx, func() (err error) { p, err = l.env.tp.Proxy(l.spec.Name); return err })
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", l.spec.Name, err)
	}
	return p, nil
}

// AddToxic adds a toxic to the link.
func (l *Link) AddToxic(ctx context.Context, t Toxic) error {
	p, err := l.proxy(ctx)
	if err != nil {
		return err
	}
	tox := t.Toxicity
	if tox == 0 {
		tox = 1
	}
	stream := t.Stream
	if stream == "" {
		stream = "downstream"
	}
	if err := callCtx(ctx, func() error {
		_, err := p.AddToxic(t.Name, t.Type, stream, tox, toxiproxy.Attributes(t.Attributes))
		return err
	}); err != nil {
		return fmt.Errorf("link %s: add toxic %s: %w", l.spec.Name, t.Type, err)
	}
	return nil
}

// RemoveToxic removes the named toxic from the link.
func (l *Link) RemoveToxic(ctx context.Context, name string) error {
	p, err := l.proxy(ctx)
	if err != nil {
		return err
	}
	if err := callCtx(ctx, func() error { return p.RemoveToxic(name) }); err != nil {
		return fmt.Errorf("link %s: remove toxic %s: %w", l.spec.Name, name, err)
	}
	return nil
}

// SetEnabled enables or disables the link. A disabled link refuses new
// connections and closes open ones: a clean cut of that path.
func (l *Link) SetEnabled(ctx context.Context, enabled bool) error {
	p, err := l.proxy(ctx)
	if err != nil {
		return err
	}
	if err := callCtx(ctx, func() error {
		if enabled {
			return p.Enable()
		}
		return p.Disable()
	}); err != nil {
		return fmt.Errorf("link %s: set enabled=%v: %w", l.spec.Name, enabled, err)
	}
	return nil
}
