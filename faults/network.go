package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// streamParam selects the direction(s) a toxic acts on.
var streamParam = Param{Name: "stream", Type: String, Default: "both", Enum: []string{"both", "upstream", "downstream"},
	Help: "upstream = client to server, downstream = server to client"}

// toxicityParam is the fraction of connections a toxic applies to.
var toxicityParam = Param{Name: "toxicity", Type: Float, Default: "1", Min: 0, Max: 1,
	Help: "fraction of connections affected (partial fault)"}

// toxicKind describes a kind that adds one Toxiproxy toxic type to a link.
type toxicKind struct {
	name, toxic, summary string
	params               []Param // besides stream and toxicity, in positional order
	// attrs turns validated values into the toxic's attributes.
	attrs func(p Values) map[string]any
	// stream is fixed for kinds that only make sense one way ("" = param).
	stream string
}

func init() {
	ms := func(p Values, name string) int64 { return p.Duration(name).Milliseconds() }
	for _, tk := range []toxicKind{
		{name: "latency", toxic: "latency", summary: "add latency with jitter to a link",
			params: []Param{
				{Name: "latency", Type: Duration, Default: "200ms", Help: "added delay"},
				{Name: "jitter", Type: Duration, Default: "0s", Help: "random +/- variation"},
			},
			attrs: func(p Values) map[string]any {
				return map[string]any{"latency": ms(p, "latency"), "jitter": ms(p, "jitter")}
			}},
		{name: "bandwidth", toxic: "bandwidth", summary: "limit a link's bandwidth",
			params: []Param{{Name: "rate", Type: Int, Default: "64", Min: 1, Help: "KB/s"}},
			attrs:  func(p Values) map[string]any { return map[string]any{"rate": p.Int("rate")} }},
		{name: "reset-peer", toxic: "reset_peer", summary: "reset connections (TCP RST) after a delay",
			params: []Param{{Name: "after", Type: Duration, Default: "0s", Help: "delay before the reset"}},
			attrs:  func(p Values) map[string]any { return map[string]any{"timeout": ms(p, "after")} }},
		{name: "slicer", toxic: "slicer", summary: "slice data into small delayed packets",
			params: []Param{
				{Name: "size", Type: Int, Default: "8", Min: 1, Help: "average packet size in bytes"},
				{Name: "variation", Type: Int, Default: "4", Help: "packet size variation in bytes"},
				{Name: "delay", Type: Duration, Default: "1ms", Help: "delay between packets"},
			},
			attrs: func(p Values) map[string]any {
				return map[string]any{"average_size": p.Int("size"), "size_variation": p.Int("variation"),
					"delay": p.Duration("delay").Microseconds()}
			}},
		{name: "timeout", toxic: "timeout", summary: "black-hole a link; close connections after a timeout (0 = never)",
			params: []Param{{Name: "timeout", Type: Duration, Default: "0s", Help: "close after this long, 0 = hold forever"}},
			attrs:  func(p Values) map[string]any { return map[string]any{"timeout": ms(p, "timeout")} }},
		{name: "limit-data", toxic: "limit_data", summary: "close connections after some bytes",
			params: []Param{{Name: "bytes", Type: Int, Default: "1024", Min: 1, Help: "bytes passed before the close"}},
			attrs:  func(p Values) map[string]any { return map[string]any{"bytes": p.Int("bytes")} }},
		{name: "slow-close", toxic: "slow_close", summary: "delay the close of connections",
			params: []Param{{Name: "delay", Type: Duration, Default: "1s", Help: "close delay"}},
			attrs:  func(p Values) map[string]any { return map[string]any{"delay": ms(p, "delay")} }},
		{name: "partition-oneway", toxic: "timeout", summary: "one-way partition: drop everything in one direction",
			params: []Param{{Name: "direction", Type: String, Default: "upstream", Enum: []string{"upstream", "downstream"},
				Help: "the direction that is cut"}},
			attrs: func(p Values) map[string]any { return map[string]any{"timeout": int64(0)} }},
		{name: "smtp-cut", toxic: SMTPCutToxic, summary: "cut SMTP connections at the end of DATA (indeterminate sends)",
			params: []Param{{Name: "mode", Type: String, Default: "after", Enum: []string{"after", "before"},
				Help: "after: forward the final '.' then cut before the reply (accepted, client unsure); before: cut without it (not accepted)"}},
			attrs:  func(p Values) map[string]any { return map[string]any{"mode": p.String("mode")} },
			stream: "auto"},
	} {
		tk := tk
		params := append([]Param(nil), tk.params...)
		if tk.stream == "" && tk.name != "partition-oneway" {
			params = append(params, streamParam)
		}
		params = append(params, toxicityParam)
		class := "network"
		if tk.name == "smtp-cut" {
			class = "protocol"
		}
		Register(&Kind{Name: tk.name, Class: class, Summary: tk.summary, Target: TargetLink, Params: params,
			New: func(env Env, target string, p Values) (Fault, error) {
				l, err := env.Link(target)
				if err != nil {
					return nil, linkNotFound(env, target, err)
				}
				streams := []string{"upstream", "downstream"}
				switch {
				case tk.name == "smtp-cut":
					// "after" drops the server's reply (downstream); "before"
					// withholds the client's final "." (upstream).
					streams = []string{"downstream"}
					if p.String("mode") == "before" {
						streams = []string{"upstream"}
					}
				case tk.stream != "":
					streams = []string{tk.stream}
				case tk.name == "partition-oneway":
					streams = []string{p.String("direction")}
				case p.String("stream") != "both":
					streams = []string{p.String("stream")}
				}
				f := &ToxicFault{kind: tk.name, link: l}
				for _, s := range streams {
					f.toxics = append(f.toxics, Toxic{Name: toxicName(tk.name, s), Type: tk.toxic, Stream: s,
						Toxicity: float32(p.Float("toxicity")), Attributes: tk.attrs(p)})
				}
				// A one-way partition with toxicity 1 stops traffic, observably.
				f.blocks = tk.name == "partition-oneway" && p.Float("toxicity") == 1
				return f, nil
			}})
	}
	Register(&Kind{Name: "partition", Class: "network", Target: TargetLink,
		Summary: "full partition of a link: the proxy is disabled (connections refused, open ones closed)",
		New: func(env Env, target string, _ Values) (Fault, error) {
			l, err := env.Link(target)
			if err != nil {
				return nil, linkNotFound(env, target, err)
			}
			return &LinkPartition{link: l}, nil
		}})
}

func linkNotFound(env Env, name string, err error) error {
	return notFound("link", name, err, env.Links())
}

// ToxicFault adds Toxiproxy toxics to a link and removes them on heal.
type ToxicFault struct {
	kind   string
	link   Link
	toxics []Toxic
	blocks bool // the toxics stop all traffic, so a probe observes inject
}

var (
	_ Fault          = (*ToxicFault)(nil)
	_ HealObserver   = (*ToxicFault)(nil)
	_ InjectObserver = (*ToxicFault)(nil)
	_ Stacker        = (*ToxicFault)(nil)
)

// Name returns the fault kind.
func (f *ToxicFault) Name() string { return f.kind }

// Stacks reports that a toxic composes with other faults on its link.
func (f *ToxicFault) Stacks() bool { return true }

// Target returns the link name.
func (f *ToxicFault) Target() string { return f.link.Name() }

// Toxics returns the toxics the fault adds (for logs and tests).
func (f *ToxicFault) Toxics() []Toxic { return f.toxics }

// Inject adds the toxics; if one fails, those added are removed again,
// within ctx: when ctx is over, the timeline's heal after a failed inject
// removes them (Heal removes every toxic of the fault).
func (f *ToxicFault) Inject(ctx context.Context) error {
	for i, t := range f.toxics {
		if err := f.link.AddToxic(ctx, t); err != nil {
			for _, added := range f.toxics[:i] {
				_ = f.link.RemoveToxic(ctx, added.Name)
			}
			return fmt.Errorf("add toxic %s to %s: %w", t.Name, f.link.Name(), err)
		}
	}
	return nil
}

// Heal removes the toxics; removing one that is not there is not an error
// the caller can act on, so every removal is tried and errors joined.
func (f *ToxicFault) Heal(ctx context.Context) error {
	var errs []error
	for _, t := range f.toxics {
		if err := f.link.RemoveToxic(ctx, t.Name); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove toxic %s from %s: %w", t.Name, f.link.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// AwaitInjected waits until a probe through the link fails, for toxics that
// block traffic; others take effect when the API call returns.
func (f *ToxicFault) AwaitInjected(ctx context.Context) error {
	if !f.blocks {
		return nil
	}
	p, ok := f.link.(Prober)
	if !ok {
		return nil
	}
	return poll(ctx, "link "+f.link.Name()+" blocked", func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if p.Probe(pctx) == nil {
			return errors.New("traffic still passes")
		}
		return nil
	})
}

// AwaitHealed waits until traffic passes through the link again.
func (f *ToxicFault) AwaitHealed(ctx context.Context) error {
	return awaitLinkPasses(ctx, f.link)
}

func awaitLinkPasses(ctx context.Context, l Link) error {
	p, ok := l.(Prober)
	if !ok {
		return nil
	}
	return poll(ctx, "link "+l.Name()+" passes traffic", func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return p.Probe(pctx)
	})
}

// isNotFound reports whether err says a toxic does not exist (Toxiproxy
// answers 404), which makes a repeated heal harmless.
func isNotFound(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "not found") || strings.Contains(s, "404")
}

// LinkPartition disables a link's proxy: new connections are refused and
// open ones closed, in both directions.
type LinkPartition struct {
	link Link
}

var (
	_ InjectObserver = (*LinkPartition)(nil)
	_ HealObserver   = (*LinkPartition)(nil)
	_ Stacker        = (*LinkPartition)(nil)
)

// Name returns "partition".
func (f *LinkPartition) Name() string { return "partition" }

// Stacks reports that a disabled link composes with toxics on it.
func (f *LinkPartition) Stacks() bool { return true }

// Target returns the link name.
func (f *LinkPartition) Target() string { return f.link.Name() }

// Inject disables the link.
func (f *LinkPartition) Inject(ctx context.Context) error {
	if err := f.link.SetEnabled(ctx, false); err != nil {
		return fmt.Errorf("disable link %s: %w", f.link.Name(), err)
	}
	return nil
}

// Heal enables the link.
func (f *LinkPartition) Heal(ctx context.Context) error {
	if err := f.link.SetEnabled(ctx, true); err != nil {
		return fmt.Errorf("enable link %s: %w", f.link.Name(), err)
	}
	return nil
}

// AwaitInjected waits until a probe through the link fails.
func (f *LinkPartition) AwaitInjected(ctx context.Context) error {
	p, ok := f.link.(Prober)
	if !ok {
		return nil
	}
	return poll(ctx, "link "+f.link.Name()+" partitioned", func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if p.Probe(pctx) == nil {
			return errors.New("traffic still passes")
		}
		return nil
	})
}

// AwaitHealed waits until traffic passes through the link again.
func (f *LinkPartition) AwaitHealed(ctx context.Context) error { return awaitLinkPasses(ctx, f.link) }
