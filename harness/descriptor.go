package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailchaos/mailchaos/internal/yamldoc"
	"go.yaml.in/yaml/v3"
)

// Descriptor is a parsed and validated stack descriptor (stack.yaml). It
// describes a mail stack as services, the networks they join (one per
// region), and the links that pass through Toxiproxy. Nothing in it is
// specific to any mail software.
type Descriptor struct {
	// Version is the descriptor format version; only 1 exists.
	Version int `yaml:"version" json:"version"`
	// Name names the stack (e.g. "reference"); defaults to the file's directory name.
	Name string `yaml:"name" json:"name"`
	// Users describes the generated test users.
	Users UsersSpec `yaml:"users" json:"users"`
	// TLS lists the extra names of the per-run server certificate.
	TLS TLSSpec `yaml:"tls" json:"tls"`
	// Proxy configures the Toxiproxy container the harness runs on every network.
	Proxy ProxySpec `yaml:"proxy" json:"proxy"`
	// Endpoints maps a client-facing endpoint name (smtp, submission, imap) to a link name.
	Endpoints map[string]string `yaml:"endpoints" json:"endpoints"`
	// Replicas maps the name of each mailbox replica (e.g. a store per
	// region) to the link through which its IMAP service is read directly,
	// bypassing the edge. After the final read the harness reads every
	// replica and checks that each holds every message the clients can see:
	// a stack whose replication is broken would otherwise pass for as long
	// as its primary survives. Optional.
	Replicas map[string]string `yaml:"replicas" json:"replicas,omitempty"`
	// PrimaryRegion is the region scenarios treat as the primary one
	// (region=primary in a fault selector: the region that is lost,
	// partitioned or whose store is stopped). Optional: when left out the
	// run's seed picks one, and the report says which.
	PrimaryRegion string `yaml:"primary_region" json:"primary_region,omitempty"`
	// Links are the Toxiproxy proxies; every path a fault may target is one.
	Links []LinkSpec `yaml:"links" json:"links"`
	// Services maps a service name to its definition.
	Services map[string]*ServiceSpec `yaml:"services" json:"services"`
	// Base, when set, makes this descriptor an overlay of another one (a
	// path relative to this file's folder): it states only what differs.
	// See overlay.go for how the two merge.
	Base string `yaml:"base,omitempty" json:"base,omitempty"`

	// Path is the file the descriptor was read from ("" when parsed from memory).
	Path string `yaml:"-" json:"-"`
	// Dir is the directory that relative file sources are resolved against.
	Dir string `yaml:"-" json:"-"`

	order []string // service names in start order (depends_on topological order)
	// roots are the absolute folders file sources may come from: Dir's,
	// then for an overlay its bases' (see source.go).
	roots []string
}

// UsersSpec describes how the test users are generated.
type UsersSpec struct {
	// Count is the number of users; Options.Users overrides it.
	Count int `yaml:"count" json:"count"`
	// Domain is the mail domain of every user.
	Domain string `yaml:"domain" json:"domain"`
	// NameFormat is a fmt format applied to the 1-based index, e.g. "user%04d".
	NameFormat string `yaml:"name_format" json:"name_format"`
	// PasswordFormat is a fmt format applied to the 1-based index, e.g. "pass-%04d".
	PasswordFormat string `yaml:"password_format" json:"password_format"`
}

// TLSSpec configures the per-run certificate.
type TLSSpec struct {
	// Names are DNS SANs of the server certificate; the service names,
	// localhost and 127.0.0.1 are always added.
	Names []string `yaml:"names" json:"names"`
}

// ProxySpec configures the Toxiproxy container.
type ProxySpec struct {
	// Image is the Toxiproxy image, e.g. mailchaos/toxiproxy:2.12.0.
	Image string `yaml:"image" json:"image"`
	// Command optionally overrides the image command, by default
	// [-host, mailchaos-toxiproxy-api, -port, 8474]. The API must listen on
	// port 8474 of the host name ProxyAPIHost, which resolves only on the
	// harness's control network (on 0.0.0.0 every service could reach it),
	// so Load refuses a command that does not name it.
	Command []string `yaml:"command" json:"command"`
}

// LinkSpec is one Toxiproxy proxy: it listens inside the toxiproxy container
// and forwards to a service port.
type LinkSpec struct {
	// Name identifies the link (and the Toxiproxy proxy).
	Name string `yaml:"name" json:"name"`
	// Listen is the port the proxy listens on inside the toxiproxy container.
	Listen int `yaml:"listen" json:"listen"`
	// Upstream is "service:port" where port is a port name or number of that service.
	Upstream string `yaml:"upstream" json:"upstream"`
	// From says who opens the link's connections: ClientsEnd (the test
	// clients), a service name, or a role (every service of that role).
	// Fault selectors match it (from=edge, from.region=primary).
	From string `yaml:"from" json:"from"`
	// To, optional, names the upstream's service or its role; the link
	// always goes to its upstream's service, so To only documents it.
	To string `yaml:"to" json:"to"`
}

// ServiceSpec is one container of the stack.
type ServiceSpec struct {
	// Name is the service name (the key in the services map).
	Name string `yaml:"-" json:"-"`
	// Image is the image the service starts with; it must exist locally.
	Image string `yaml:"image" json:"image"`
	// UpgradeImage is the image an upgrade rehearsal replaces Image with.
	UpgradeImage string `yaml:"upgrade_image" json:"upgrade_image"`
	// Region is the region ("" = global, on the core network).
	Region string `yaml:"region" json:"region"`
	// Role is edge, mta, store, standby, or x-<anything> for custom roles.
	Role string `yaml:"role" json:"role"`
	// Networks are extra networks besides the region's (or core).
	Networks []string `yaml:"networks" json:"networks"`
	// Ports maps a port name to a container port; each is published on 127.0.0.1.
	Ports map[string]int `yaml:"ports" json:"ports"`
	// Ready is the readiness probe.
	Ready ReadySpec `yaml:"ready" json:"ready"`
	// DependsOn lists services that must be ready before this one starts.
	DependsOn []string `yaml:"depends_on" json:"depends_on"`
	// Volumes maps a volume name to a mount path; volumes are named per run.
	Volumes map[string]string `yaml:"volumes" json:"volumes"`
	// Tmpfs maps a mount path to tmpfs mount options ("" for the engine's
	// defaults, e.g. "size=64m,mode=0755"): memory that is empty at every
	// container start, unlike the container's own writable layer, which a
	// kill and start keeps.
	Tmpfs map[string]string `yaml:"tmpfs" json:"tmpfs"`
	// Env is extra environment.
	Env map[string]string `yaml:"env" json:"env"`
	// StopTimeout bounds a graceful stop before the container is killed (default 10s).
	StopTimeout Duration `yaml:"stop_timeout" json:"stop_timeout"`
	// Quiesce, optional, is run inside the container after the edge has
	// drained it and before a planned stop (a rolling upgrade); it exits 0
	// once the node holds no work in flight, e.g. an MTA whose queue is
	// empty. The upgrade retries it, bounded by its drain timeout: an MTA
	// stopped in the middle of a delivery delivers that message again.
	Quiesce []string `yaml:"quiesce" json:"quiesce,omitempty"`
	// Command overrides the image's CMD when not empty.
	Command []string `yaml:"command" json:"command"`
	// Files are written into the container before it starts.
	Files []FileSpec `yaml:"files" json:"files"`
	// Control holds the edge's control commands (role edge only).
	Control *ControlSpec `yaml:"control" json:"control"`
}

// ReadySpec is a readiness probe: either a banner check (Port + Expect) over
// TCP from the host, or a command (Exec) that exits 0 when ready.
type ReadySpec struct {
	// Port names the service port whose first line is read.
	Port string `yaml:"port" json:"port"`
	// Expect is a regular expression the first line must match.
	Expect string `yaml:"expect" json:"expect"`
	// Exec is a command run inside the container; exit code 0 means ready.
	Exec []string `yaml:"exec" json:"exec"`
	// Timeout bounds the wait (default 60s; Options.ReadyTimeout overrides).
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// FileSpec is a file written into a container before it starts.
type FileSpec struct {
	// Path is the absolute path inside the container.
	Path string `yaml:"path" json:"path"`
	// Mode is the file mode (default 0644).
	Mode uint32 `yaml:"mode" json:"mode"`
	// Owner is an optional numeric "uid:gid" (default 0:0).
	Owner string `yaml:"owner" json:"owner"`
	// Template is inline text/template content.
	Template string `yaml:"template" json:"template"`
	// Source is a file relative to the descriptor, copied verbatim unless Render.
	Source string `yaml:"source" json:"source"`
	// Render renders Source as a text/template.
	Render bool `yaml:"render" json:"render"`
	// Edits are regexp replacements applied to the text (source or
	// template) before it is rendered; each must match at least once.
	Edits []Edit `yaml:"edits" json:"edits,omitempty"`
	// Append is text added at the end, after the edits (and rendered with
	// the rest when the file is a template).
	Append string `yaml:"append" json:"append,omitempty"`
}

// ControlSpec holds the edge's control commands. Each is run inside the edge
// container with {{.Node}} replaced by a service name.
type ControlSpec struct {
	// Drain stops new sessions to a node.
	Drain []string `yaml:"drain" json:"drain"`
	// Enable re-enables a drained node.
	Enable []string `yaml:"enable" json:"enable"`
	// Sessions prints one integer: open sessions to a node.
	Sessions []string `yaml:"sessions" json:"sessions"`
	// Serving, optional, exits 0 when the edge sends new sessions to a node
	// again (enabled, and its health checks pass). A rolling upgrade waits
	// for it before it drains the next node: otherwise, for the seconds
	// the edge still counts the replaced node down, the next drain leaves
	// it no server for new sessions.
	Serving []string `yaml:"serving" json:"serving,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("10s", "1m30s").
type Duration time.Duration

// UnmarshalYAML decodes a duration string. Invalid values decode as zero:
// Parse reports them (with their line) during validation.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err == nil {
		*d = Duration(v)
	}
	return nil
}

// MarshalYAML encodes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// MaxUsers is the most test users a descriptor (users.count) or a run
// (--users) may ask for: each is a mailbox the final read reads whole.
const MaxUsers = 100000

// MaxDuration bounds every duration of a descriptor (stop_timeout,
// ready.timeout): a timeout of years is a wait without a deadline.
const MaxDuration = 24 * time.Hour

// parseOwner parses a file owner "uid:gid" (numeric).
func parseOwner(s string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(s, ":")
	uid64, uerr := strconv.ParseUint(u, 10, 32)
	gid64, gerr := strconv.ParseUint(g, 10, 32)
	if !ok || uerr != nil || gerr != nil {
		return 0, 0, fmt.Errorf("owner %q must be numeric uid:gid, each 0 to 4294967295, e.g. 0:101", s)
	}
	return int(uid64), int(gid64), nil
}

// KnownRoles are the roles the harness gives a meaning to; custom roles start with "x-".
var KnownRoles = []string{"edge", "mta", "store", "standby"}

// Load reads and validates a descriptor file. Every problem found is
// reported at once in a *DescriptorError.
func Load(path string) (*Descriptor, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read descriptor: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a descriptor. name is the file path used in
// messages and to resolve relative file sources and the base (see Base).
func Parse(name string, data []byte) (*Descriptor, error) {
	d, _, err := parse(name, data, nil)
	return d, err
}

// parse is Parse that also returns the merged YAML document (for an overlay
// of this descriptor); chain lists the descriptors that named it as base.
func parse(name string, data []byte, chain []string) (*Descriptor, *yaml.Node, error) {
	p := &parser{file: name, lines: map[string]int{}}
	d := &Descriptor{Path: name, Dir: filepath.Dir(name)}

	var root yaml.Node
	if err := yamldoc.Unmarshal(data, &root); err != nil {
		p.addYAMLError(err)
		return nil, nil, p.err()
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		p.add(1, "the descriptor is empty: start with 'version: 1' and a 'services:' map")
		return nil, nil, p.err()
	}
	doc := root.Content[0]
	if n := expandedSize(doc, map[*yaml.Node]int{}); n > maxExpandedNodes {
		p.add(1, "the descriptor's aliases (*name) expand it to more than %d values: write the repeated parts out, or repeat less", maxExpandedNodes)
		return nil, nil, p.err()
	}
	if doc.Kind == yaml.MappingNode {
		if chain == nil {
			if abs, err := filepath.Abs(name); err == nil {
				chain = []string{abs}
			}
		}
		doc = p.resolveBase(doc, name, chain)
		if len(p.problems) > 0 {
			return nil, nil, p.err()
		}
	}
	p.walk(doc, descriptorType, nil)
	if err := doc.Decode(d); err != nil {
		p.addYAMLError(err)
	}
	for name, s := range d.Services {
		if s == nil {
			s = &ServiceSpec{}
			d.Services[name] = s
		}
		s.Name = name
	}
	if d.Name == "" {
		d.Name = filepath.Base(d.Dir)
	}
	if abs, err := filepath.Abs(d.Dir); err == nil {
		d.roots = append([]string{abs}, p.baseRoots...)
	}
	p.validate(d)
	if len(p.problems) > 0 {
		return nil, nil, p.err()
	}
	return d, doc, nil
}

// maxExpandedNodes bounds a descriptor's size with every alias expanded.
// Validation visits an alias's value once per alias, so a few kilobytes
// of aliases of aliases (a "billion laughs") would otherwise keep it busy
// for hours; the reference stack expands to a few thousand values.
const maxExpandedNodes = 200000

// expandedSize returns how many nodes n has with every alias expanded,
// stopping early past maxExpandedNodes. memo holds the nodes sized
// already; a node being sized counts as too large, so a cycle ends too.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int) int {
	if v, ok := memo[n]; ok {
		return v
	}
	memo[n] = maxExpandedNodes + 1
	size := 1
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		size += expandedSize(n.Alias, memo)
	}
	for _, c := range n.Content {
		if size += expandedSize(c, memo); size > maxExpandedNodes {
			break
		}
	}
	memo[n] = size
	return size
}

// ServiceNames returns the service names in start order (dependencies first).
func (d *Descriptor) ServiceNames() []string {
	if d.order == nil {
		d.order, _ = topoOrder(d.Services)
	}
	return append([]string(nil), d.order...)
}

// Regions returns the sorted names of the regions used by services.
func (d *Descriptor) Regions() []string {
	seen := map[string]bool{}
	for _, s := range d.Services {
		if s.Region != "" {
			seen[s.Region] = true
		}
	}
	return sortedKeys(seen)
}

// NetworksOf returns the networks (short names, e.g. "core", "region-a") a
// service joins, its primary network first.
func (d *Descriptor) NetworksOf(s *ServiceSpec) []string {
	primary := "core"
	if s.Region != "" {
		primary = "region-" + s.Region
	}
	out := []string{primary}
	for _, n := range s.Networks {
		if n != primary && !contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Networks returns every network of the stack (short names), sorted.
func (d *Descriptor) Networks() []string {
	seen := map[string]bool{}
	for _, s := range d.Services {
		for _, n := range d.NetworksOf(s) {
			seen[n] = true
		}
	}
	if len(seen) == 0 {
		seen["core"] = true
	}
	return sortedKeys(seen)
}

// Link returns the named link spec.
func (d *Descriptor) Link(name string) (LinkSpec, bool) {
	for _, l := range d.Links {
		if l.Name == name {
			return l, true
		}
	}
	return LinkSpec{}, false
}

// ClientsEnd is the From of a link that the test clients connect through.
const ClientsEnd = "clients"

// LinkEnd is one side of a link, resolved against the services.
type LinkEnd struct {
	// Name is a service name, a role, or ClientsEnd.
	Name string
	// Role is the service's role (the role itself for a role; "" for the clients).
	Role string
	// Region is the service's region; for a role, the region its services
	// share ("" when they span regions or are global).
	Region string
}

// LinkEnds resolves a link's From and its upstream's service.
func (d *Descriptor) LinkEnds(l LinkSpec) (from, to LinkEnd) {
	svc, _, _ := strings.Cut(l.Upstream, ":")
	return d.end(l.From), d.end(svc)
}

// LinkProtocol is the name of the link's upstream port (smtp, imap,
// lmtp...), or the port number when the service does not name it.
func (d *Descriptor) LinkProtocol(l LinkSpec) string {
	svc, port, _ := strings.Cut(l.Upstream, ":")
	s, ok := d.Services[svc]
	if !ok {
		return port
	}
	if _, named := s.Ports[port]; named {
		return port
	}
	for _, name := range sortedKeys(s.Ports) {
		if strconv.Itoa(s.Ports[name]) == port {
			return name
		}
	}
	return port
}

func (d *Descriptor) end(name string) LinkEnd {
	if name == ClientsEnd || name == "" {
		return LinkEnd{Name: name}
	}
	if s, ok := d.Services[name]; ok {
		return LinkEnd{Name: name, Role: s.Role, Region: s.Region}
	}
	e := LinkEnd{Name: name, Role: name}
	first := true
	for _, s := range d.Services {
		if s.Role != name {
			continue
		}
		if first {
			e.Region, first = s.Region, false
		} else if s.Region != e.Region {
			e.Region = ""
		}
	}
	return e
}

func (d *Descriptor) hasRole(role string) bool {
	for _, s := range d.Services {
		if s.Role == role {
			return true
		}
	}
	return false
}

// DescriptorError lists every problem found in a descriptor, or in any
// other YAML file mailchaos reads the same way (a scenario file).
type DescriptorError struct {
	// File is the descriptor path.
	File string
	// What names the kind of file in the message ("" = "stack descriptor").
	What string
	// Problems are sorted by line.
	Problems []Problem
}

// Problem is one mistake in a descriptor.
type Problem struct {
	// Line is the 1-based line (0 when unknown).
	Line int
	// Message says what is wrong and how to fix it.
	Message string
}

// Error lists every problem on its own line as "file:line: message".
func (e *DescriptorError) Error() string {
	var b strings.Builder
	if len(e.Problems) > 1 {
		what := e.What
		if what == "" {
			what = "stack descriptor"
		}
		fmt.Fprintf(&b, "%s: %d problems in the %s:\n", e.File, len(e.Problems), what)
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Message)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, p.Message)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
