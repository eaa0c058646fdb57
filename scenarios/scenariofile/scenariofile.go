// Package scenariofile reads scenario files: a scenario as data (YAML),
// the way a platform team writes its own and the way the built-in ones
// are shipped. A file says what a pass proves, its labels, what it needs
// of a stack, its fault timeline (specs whose targets are selectors, at
// and for as fractions of the load phase or as durations) and its gates.
// Parse checks the whole file and reports every problem at once, each
// with its line and, for a misspelt name, a "did you mean"; nothing is
// started for a file with a problem. The JSON Schema of the format is
// schema/scenario.schema.json beside this file.
//
//	name: region-loss
//	proves: losing a whole region for a while loses no accepted mail
//	labels: [nightly, dr]
//	needs: {regions: 2}
//	faults:
//	  - {at: 0.2, for: 0.5, spec: "region-loss:region=primary"}
//	thresholds: ["delivery_latency_p99 < 90s"]
package scenariofile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/faults"
	"github.com/mailchaos/mailchaos/harness"
	"github.com/mailchaos/mailchaos/harness/suggest"
	"github.com/mailchaos/mailchaos/internal/yamldoc"
	"github.com/mailchaos/mailchaos/reports/check"
	"github.com/mailchaos/mailchaos/scenarios/flow"
	"go.yaml.in/yaml/v3"
)

// Ext is the extension of scenario files in a directory.
const Ext = ".yaml"

// The keys of a scenario file, of its needs and of one fault.
var (
	fileKeys    = []string{"name", "proves", "labels", "needs", "min_duration", "rehearsal", "faults", "nemesis", "strict", "thresholds", "gates", "allow_client_downtime", "allow_late"}
	nemesisKeys = []string{"menu", "start", "window", "hold", "gap", "count", "max_active"}
	needsKeys   = []string{"regions", "roles", "upgrade", "edge_control"}
	faultKeys   = []string{"at", "for", "spec", "optional"}
)

// Parse reads one scenario from data; name is the file's path in messages.
// Every problem is reported in one *harness.DescriptorError.
func Parse(name string, data []byte) (flow.Scenario, error) {
	p := &parser{err: &harness.DescriptorError{File: name, What: "scenario file"}}
	s := flow.Scenario{File: name}
	var root yaml.Node
	if err := yamldoc.Unmarshal(data, &root); err != nil {
		var ye *yamldoc.Error
		if errors.As(err, &ye) {
			p.add(ye.Line, "%s", ye.Message)
			return s, p.result()
		}
		p.add(0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return s, p.result()
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		p.add(1, "a scenario file is a mapping: start with 'name:', 'proves:', 'labels:' and 'faults:'")
		return s, p.result()
	}
	doc := root.Content[0]
	strict := true
	var extra []string
	p.fields(doc, fileKeys, "", func(key string, v *yaml.Node) {
		switch key {
		case "name":
			s.Name = p.str(v, key)
		case "proves":
			s.Proves = p.str(v, key)
		case "labels":
			s.Labels = p.strs(v, key)
		case "needs":
			s.Needs = p.needs(v)
		case "min_duration":
			s.MinDuration = p.duration(v, key)
		case "rehearsal":
			s.Rehearsal = p.boolean(v, key)
		case "faults":
			s.Faults = p.faults(v)
		case "nemesis":
			s.Nemesis = p.nemesis(v)
		case "strict":
			strict = p.boolean(v, key)
		case "thresholds":
			extra = p.thresholds(v)
		case "gates":
			s.Gates = p.gates(v)
		case "allow_client_downtime":
			s.Policy.AllowClientDowntime = p.boolean(v, key)
		case "allow_late":
			s.Policy.AllowLate = p.boolean(v, key)
		}
	})
	for _, req := range []struct{ key, val string }{{"name", s.Name}, {"proves", s.Proves}} {
		if req.val == "" {
			p.add(doc.Line, "%s is missing", req.key)
		}
	}
	if len(s.Labels) == 0 {
		p.add(doc.Line, "labels are missing: give at least one (nightly, smoke, upgrade, dr, or your own)")
	}
	// A strict scenario holds the zero-loss gate: its thresholds come on
	// top of flow.GateThresholds and its gates on top of the strict set.
	if strict {
		s.Policy.Thresholds = append(slices.Clone(flow.GateThresholds), extra...)
		gates := slices.Clone(flow.StrictGates)
		for _, g := range s.Gates {
			if !slices.Contains(gates, g) {
				gates = append(gates, g)
			}
		}
		s.Gates = gates
	} else {
		s.Policy.Thresholds = extra
		if len(s.Gates) == 0 {
			p.add(doc.Line, "strict: false needs gates: name the gates that judge the run (%s)", strings.Join(flow.GateNames, ", "))
		}
	}
	if err := p.result(); err != nil {
		return s, err
	}
	return s, nil
}

// Load reads one scenario file.
func Load(path string) (flow.Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return flow.Scenario{}, fmt.Errorf("read scenario file: %w", err)
	}
	return Parse(path, data)
}

// LoadAll reads every scenario of paths: files, or directories whose
// *.yaml files are read in name order. Every problem of every file is
// reported at once; two scenarios with one name are an error.
func LoadAll(paths []string) ([]flow.Scenario, error) {
	var files []string
	var errs []error
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("scenario file: %w", err))
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(p, "*"+Ext))
		if len(matches) == 0 {
			errs = append(errs, fmt.Errorf("scenario folder %s holds no *%s file", p, Ext))
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	var out []flow.Scenario
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(append(errs, Duplicates(out))...)
}

// LoadFS reads every *.yaml file of a file system (the embedded built-in
// scenarios); their File is "builtin:<file name>".
func LoadFS(fsys fs.FS) ([]flow.Scenario, error) {
	names, err := fs.Glob(fsys, "*"+Ext)
	if err != nil {
		return nil, err
	}
	var out []flow.Scenario
	var errs []error
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := Parse("builtin:"+n, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(append(errs, Duplicates(out))...)
}

// Duplicates reports scenarios that share a name, with both files.
func Duplicates(list []flow.Scenario) error {
	seen := map[string]string{}
	var errs []error
	for _, s := range list {
		if prev, ok := seen[s.Name]; ok {
			errs = append(errs, fmt.Errorf("scenario %q is defined twice (%s and %s): rename one", s.Name, prev, s.File))
			continue
		}
		seen[s.Name] = s.File
	}
	return errors.Join(errs...)
}

// parser collects problems with their lines.
type parser struct {
	err *harness.DescriptorError
}

func (p *parser) add(line int, format string, args ...any) {
	p.err.Problems = append(p.err.Problems, harness.Problem{Line: line, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) result() error {
	if len(p.err.Problems) == 0 {
		return nil
	}
	sort.SliceStable(p.err.Problems, func(i, j int) bool { return p.err.Problems[i].Line < p.err.Problems[j].Line })
	return p.err
}

// fields calls fn for every key of the mapping n that is one of keys, and
// reports the others (with a suggestion) and repeated keys.
func (p *parser) fields(n *yaml.Node, keys []string, where string, fn func(key string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, "%smust be a mapping (key: value)", where)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !slices.Contains(keys, k.Value):
			p.add(k.Line, "%sunknown key %q%s; keys: %s", where, k.Value, suggest.DidYouMean(k.Value, keys), strings.Join(keys, ", "))
		case seen[k.Value]:
			p.add(k.Line, "%s%s is given twice", where, k.Value)
		default:
			seen[k.Value] = true
			fn(k.Value, v)
		}
	}
}

func (p *parser) str(v *yaml.Node, key string) string {
	if v.Kind != yaml.ScalarNode {
		p.add(v.Line, "%s must be a string", key)
		return ""
	}
	return strings.TrimSpace(v.Value)
}

func (p *parser) strs(v *yaml.Node, key string) []string {
	if v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) != "" {
		return []string{strings.TrimSpace(v.Value)}
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, "%s must be a list, e.g. [a, b]", key)
		return nil
	}
	var out []string
	for _, e := range v.Content {
		if s := p.str(e, key); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) boolean(v *yaml.Node, key string) bool {
	b, err := strconv.ParseBool(v.Value)
	if err != nil || v.Kind != yaml.ScalarNode {
		p.add(v.Line, "%s: %q is not true or false", key, v.Value)
	}
	return b
}

func (p *parser) duration(v *yaml.Node, key string) time.Duration {
	d, err := time.ParseDuration(v.Value)
	if err != nil || d < 0 {
		p.add(v.Line, "%s: %q is not a duration: write it like 90s or 2m30s", key, v.Value)
		return 0
	}
	return p.bounded(v, key, d)
}

// bounded returns d, or reports that it is longer than any load phase:
// a fault an hour past a 24h run never happens, a hold of years never heals.
func (p *parser) bounded(v *yaml.Node, key string, d time.Duration) time.Duration {
	if d > flow.MaxDuration {
		p.add(v.Line, "%s: %s is longer than %s, the longest load phase", key, v.Value, flow.MaxDuration)
		return 0
	}
	return d
}

// count reads a whole number of at least 1.
func (p *parser) count(v *yaml.Node, key, what string) int {
	c, err := strconv.Atoi(v.Value)
	if err != nil || c < 1 || c > maxCount {
		p.add(v.Line, "%s: %q is not %s (1 to %d)", key, v.Value, what, maxCount)
		return 0
	}
	return c
}

// maxCount bounds every count of a scenario file: no stack has more
// regions, and no run more faults, than this.
const maxCount = 10000

func (p *parser) needs(v *yaml.Node) flow.Needs {
	var n flow.Needs
	p.fields(v, needsKeys, "needs: ", func(key string, v *yaml.Node) {
		switch key {
		case "regions":
			n.Regions = p.count(v, "needs: regions", "a count of regions")
		case "roles":
			n.Roles = p.strs(v, "needs: roles")
		case "upgrade":
			n.Upgrade = p.strs(v, "needs: upgrade")
		case "edge_control":
			n.EdgeControl = p.strs(v, "needs: edge_control")
			for _, c := range n.EdgeControl {
				if !slices.Contains(flow.EdgeControls, c) {
					p.add(v.Line, "needs: edge_control: unknown command %q%s (commands: %s)", c, suggest.DidYouMean(c, flow.EdgeControls), strings.Join(flow.EdgeControls, ", "))
				}
			}
		}
	})
	return n
}

// nemesis reads a seeded random timeline:
//
//	nemesis: {menu: ["kill:role=mta", ...], start: 0.1, window: 0.7, hold: [5s, 15s], gap: [5s, 10s], count: 4}
func (p *parser) nemesis(v *yaml.Node) *flow.NemesisSpec {
	n := &flow.NemesisSpec{MinHold: 5 * time.Second, MaxHold: 15 * time.Second, MinGap: 5 * time.Second, MaxGap: 10 * time.Second, MaxActive: 1}
	p.fields(v, nemesisKeys, "nemesis: ", func(key string, v *yaml.Node) {
		switch key {
		case "menu":
			n.Menu = p.strs(v, "nemesis: menu")
			for _, m := range n.Menu {
				p.spec(v.Line, "nemesis: menu: ", m)
			}
		case "start":
			n.Window.At, n.Window.AtTime = p.offset(v, "nemesis: start")
		case "window":
			n.Window.For, n.Window.ForTime = p.offset(v, "nemesis: window")
		case "hold":
			n.MinHold, n.MaxHold = p.durationRange(v, "nemesis: hold")
		case "gap":
			n.MinGap, n.MaxGap = p.durationRange(v, "nemesis: gap")
		case "count", "max_active":
			c := p.count(v, "nemesis: "+key, "a count")
			if key == "count" {
				n.Count = c
			} else {
				n.MaxActive = c
			}
		}
	})
	if len(n.Menu) == 0 {
		p.add(v.Line, "nemesis: menu is missing: list the fault specs it picks from, e.g. [\"kill:role=mta\", \"partition:path=cross-region\"]")
	}
	if n.Window.AtTime == 0 && n.Window.ForTime == 0 && n.Window.At+n.Window.For > 1 {
		p.add(v.Line, "nemesis: start %g + window %g ends after the load phase: together at most 1", n.Window.At, n.Window.For)
	}
	return n
}

// durationRange reads [min, max] durations.
func (p *parser) durationRange(v *yaml.Node, what string) (lo, hi time.Duration) {
	if v.Kind != yaml.SequenceNode || len(v.Content) != 2 {
		p.add(v.Line, "%s: give [min, max], e.g. [5s, 15s]", what)
		return 0, 0
	}
	lo, hi = p.duration(v.Content[0], what), p.duration(v.Content[1], what)
	if hi < lo {
		p.add(v.Line, "%s: max %s is below min %s", what, hi, lo)
	}
	return lo, hi
}

func (p *parser) faults(v *yaml.Node) []flow.FaultAt {
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, "faults must be a list of {at, for, spec}")
		return nil
	}
	var out []flow.FaultAt
	for i, item := range v.Content {
		where := fmt.Sprintf("fault #%d: ", i+1)
		var f flow.FaultAt
		p.fields(item, faultKeys, where, func(key string, v *yaml.Node) {
			switch key {
			case "at":
				f.At, f.AtTime = p.offset(v, where+"at")
			case "for":
				f.For, f.ForTime = p.offset(v, where+"for")
			case "spec":
				f.Spec = p.str(v, where+"spec")
				p.spec(v.Line, where, f.Spec)
			case "optional":
				f.Optional = p.boolean(v, where+"optional")
			}
		})
		if f.Spec == "" && item.Kind == yaml.MappingNode {
			p.add(item.Line, "%sspec is missing: the fault, e.g. \"partition:path=cross-region\"", where)
		}
		if f.AtTime == 0 && f.ForTime == 0 && f.At+f.For > 1 {
			p.add(item.Line, "%sat %g + for %g ends after the load phase: together at most 1", where, f.At, f.For)
		}
		out = append(out, f)
	}
	return out
}

// offset reads an at or for: a fraction of the load phase (0 to 1) or a
// duration.
func (p *parser) offset(v *yaml.Node, what string) (float64, time.Duration) {
	if x, err := strconv.ParseFloat(v.Value, 64); err == nil {
		if x < 0 || x > 1 || x != x {
			p.add(v.Line, "%s: %s is outside the load phase: a fraction from 0 to 1, or a duration such as 30s", what, v.Value)
			return 0, 0
		}
		return x, 0
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil || d < 0 {
		p.add(v.Line, "%s: %q is neither a fraction of the load phase (0.2) nor a duration (30s)", what, v.Value)
		return 0, 0
	}
	return 0, p.bounded(v, what, d)
}

// spec checks a fault spec and, where its target is a selector, the
// selector; resolving it needs a stack and happens when a run starts.
func (p *parser) spec(line int, where, spec string) {
	if spec == "" {
		return
	}
	s, err := faults.ParseSpec(spec)
	if err != nil {
		p.add(line, "%s%v", where, err)
		return
	}
	if faults.IsSelector(s.Target) {
		if _, err := faults.ParseSelector(s.Target, s.Kind.Target); err != nil {
			p.add(line, "%s%v", where, err)
		}
	}
}

func (p *parser) thresholds(v *yaml.Node) []string {
	if v.Kind != yaml.SequenceNode {
		p.add(v.Line, "thresholds must be a list, e.g. [\"delivery_latency_p99 < 60s\"]")
		return nil
	}
	var out []string
	for _, e := range v.Content {
		expr := p.str(e, "threshold")
		if _, err := check.ParseThreshold(expr); err != nil {
			p.add(e.Line, "%v", err)
			continue
		}
		out = append(out, expr)
	}
	return out
}

func (p *parser) gates(v *yaml.Node) []string {
	gates := p.strs(v, "gates")
	for _, g := range gates {
		if !slices.Contains(flow.GateNames, g) {
			p.add(v.Line, "gates: unknown gate %q%s (gates: %s)", g, suggest.DidYouMean(g, flow.GateNames), strings.Join(flow.GateNames, ", "))
		}
	}
	return gates
}
