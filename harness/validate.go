package harness

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/mailchaos/mailchaos/harness/suggest"
	"go.yaml.in/yaml/v3"
)

var (
	descriptorType = reflect.TypeOf(Descriptor{})
	durationType   = reflect.TypeOf(Duration(0))
	yamlLineRE     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	nameRE         = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
)

// parser collects problems and the line of every key while walking the YAML tree.
type parser struct {
	file     string
	problems []Problem
	lines    map[string]int // dotted path -> line
	// baseRoots are the folders of the base's file sources (an overlay).
	baseRoots []string
}

func (p *parser) add(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: line, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error {
	sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
	return &DescriptorError{File: p.file, Problems: p.problems}
}

// addYAMLError turns yaml.v3 errors ("line 3: cannot unmarshal ...") into problems.
func (p *parser) addYAMLError(err error) {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			if strings.HasPrefix(sm[2], "cannot unmarshal !!float") && p.reported(n) {
				continue // walk said it better: not a whole number
			}
			p.add(n, "%s", sm[2])
			continue
		}
		p.add(0, "%s", strings.TrimPrefix(m, "yaml: "))
	}
}

// reported reports whether a problem was found on line already.
func (p *parser) reported(line int) bool {
	for _, pr := range p.problems {
		if pr.Line == line {
			return true
		}
	}
	return false
}

// line returns the line of the deepest recorded prefix of path.
func (p *parser) line(path ...string) int {
	for i := len(path); i > 0; i-- {
		if l, ok := p.lines[strings.Join(path[:i], ".")]; ok {
			return l
		}
	}
	return 0
}

// walk records key lines and reports unknown keys and bad durations, which
// yaml's own decoding would either stop at or ignore.
func (p *parser) walk(n *yaml.Node, t reflect.Type, at []string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if len(at) > 0 {
		if _, ok := p.lines[strings.Join(at, ".")]; !ok {
			p.lines[strings.Join(at, ".")] = n.Line
		}
	}
	switch {
	case t == durationType:
		if n.Kind == yaml.ScalarNode && n.Value != "" {
			d, err := time.ParseDuration(n.Value)
			switch {
			case err != nil:
				p.add(n.Line, "%s%s: %q is not a duration: write it like 10s, 500ms or 1m30s", p.where(at), p.field(at), n.Value)
			case d < 0:
				p.add(n.Line, "%s%s: %s is negative: give a positive duration, or leave it out for the default", p.where(at), p.field(at), n.Value)
			case d > MaxDuration:
				p.add(n.Line, "%s%s: %s is longer than %s: every wait of a run has a deadline it can reach", p.where(at), p.field(at), n.Value, MaxDuration)
			}
		}
	case isInteger(t):
		// yaml decodes 2.5 into an int as 2 and .nan or .inf as an error
		// that does not say what to write: a whole number.
		if n.Kind == yaml.ScalarNode && n.Tag == "!!float" {
			p.add(n.Line, "%s%s: %s is not a whole number: write it without a fraction, exponent, .nan or .inf, e.g. 25", p.where(at), p.field(at), n.Value)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				p.add(n.Line, "%s%s must be a mapping (key: value lines)", p.where(at), last(at, "the document"))
			}
			return
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			fields[tag] = f
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				p.add(k.Line, "%sunknown key %q%s; known keys: %s", p.where(at), k.Value, didYouMean(k.Value, names), strings.Join(names, ", "))
				continue
			}
			p.lines[strings.Join(append(append([]string{}, at...), k.Value), ".")] = k.Line
			p.walk(v, f.Type, append(append([]string{}, at...), k.Value))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return // yaml's decoder reports the type mismatch
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				p.add(k.Line, "%s%q is defined twice in %s: keep one", p.where(at), k.Value, last(at, "the document"))
			}
			seen[k.Value] = true
			sub := append(append([]string{}, at...), k.Value)
			p.lines[strings.Join(sub, ".")] = k.Line
			p.walk(v, t.Elem(), sub)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			p.walk(item, t.Elem(), append(append([]string{}, at...), strconv.Itoa(i)))
		}
	}
}

// isInteger reports whether t is an integer kind.
func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// where prefixes messages about a service or link with its name.
func (p *parser) where(at []string) string {
	if len(at) >= 2 && at[0] == "services" {
		return fmt.Sprintf("service %q: ", at[1])
	}
	if len(at) >= 2 && at[0] == "links" {
		return fmt.Sprintf("link #%s: ", at[1])
	}
	return ""
}

// field names a key relative to its service or link, e.g. "ready.timeout".
func (p *parser) field(at []string) string {
	if len(at) > 2 && (at[0] == "services" || at[0] == "links") {
		return strings.Join(at[2:], ".")
	}
	return strings.Join(at, ".")
}

func last(at []string, def string) string {
	if len(at) == 0 {
		return def
	}
	return at[len(at)-1]
}

// validate checks the decoded descriptor's meaning.
func (p *parser) validate(d *Descriptor) {
	if d.Version != 1 {
		p.add(p.line("version"), "version is %d: only 'version: 1' exists", d.Version)
	}
	p.validateUsers(d)
	if len(d.Services) == 0 {
		p.add(p.line("services"), "no services: add a 'services:' map with at least one service")
	}
	regions := map[string]bool{}
	for _, s := range d.Services {
		if s.Region != "" {
			regions[s.Region] = true
		}
	}
	edges := 0
	for _, name := range sortedKeys(d.Services) {
		s := d.Services[name]
		if s.Role == "edge" {
			edges++
			if edges > 1 {
				p.add(p.line("services", name, "role"), "service %q: a second service with role edge: a stack has at most one edge", name)
			}
		}
		p.validateService(d, s)
	}
	if order, cycle := topoOrder(d.Services); cycle != nil {
		p.add(p.line("services", cycle[0], "depends_on"), "service %q: dependency cycle %s: remove one of these depends_on entries", cycle[0], strings.Join(cycle, " -> "))
	} else {
		d.order = order
	}
	if d.PrimaryRegion != "" && !contains(d.Regions(), d.PrimaryRegion) {
		p.add(p.line("primary_region"), "primary_region %q is not a region of any service%s (regions: %s)",
			d.PrimaryRegion, didYouMean(d.PrimaryRegion, d.Regions()), strings.Join(d.Regions(), ", "))
	}
	p.validateLinks(d)
	p.validateLinkRefs(d, "endpoints", "endpoint", "name one of the links", d.Endpoints)
	p.validateLinkRefs(d, "replicas", "replica", "name the link to its IMAP service", d.Replicas)
	if (len(d.Links) > 0 || len(d.Endpoints) > 0) && d.Proxy.Image == "" {
		p.add(p.line("proxy"), "proxy.image is missing: links need a Toxiproxy image, e.g. 'proxy: {image: mailchaos/toxiproxy:2.12.0}'")
	}
	if len(d.Proxy.Command) > 0 && !slices.ContainsFunc(d.Proxy.Command, func(a string) bool { return strings.Contains(a, ProxyAPIHost) }) {
		p.add(p.line("proxy", "command"), "proxy.command must make the API listen on host %s (e.g. [-host, %s, -port, \"8474\"]), which only the harness reaches; on 0.0.0.0 every service could reach the API and heal its own faults", ProxyAPIHost, ProxyAPIHost)
	}
	for i, n := range d.TLS.Names {
		if n == "" || strings.ContainsAny(n, " /:") {
			p.add(p.line("tls", "names", strconv.Itoa(i)), "tls.names: %q is not a DNS name", n)
		}
	}
}

func (p *parser) validateUsers(d *Descriptor) {
	u := &d.Users
	if u.Count < 0 || u.Count > MaxUsers {
		p.add(p.line("users", "count"), "users.count is %d: it must be from 0 to %d", u.Count, MaxUsers)
	}
	if u.Count == 0 && u.Domain == "" && u.NameFormat == "" {
		return // no users
	}
	if u.Domain == "" {
		p.add(p.line("users"), "users.domain is missing: set the mail domain, e.g. 'domain: example.test'")
	}
	// password_format is optional: without it every run draws random passwords.
	for key, f := range map[string]string{"name_format": u.NameFormat, "password_format": u.PasswordFormat} {
		if f == "" && key == "name_format" {
			p.add(p.line("users"), "users.%s is missing: give a fmt format of the 1-based index, e.g. \"user%%04d\"", key)
		}
		if f == "" {
			continue
		}
		if out := fmt.Sprintf(f, 1); strings.Contains(out, "%!") || out == fmt.Sprintf(f, 2) {
			p.add(p.line("users", key), "users.%s %q must contain exactly one integer verb such as %%d or %%04d", key, f)
		}
	}
}

func (p *parser) validateService(d *Descriptor, s *ServiceSpec) {
	name := s.Name
	at := func(k ...string) int { return p.line(append([]string{"services", name}, k...)...) }
	if !nameRE.MatchString(name) {
		p.add(at(), "service %q: names use lower-case letters, digits, '-', '_' and '.'", name)
	}
	if s.Image == "" {
		p.add(at(), "service %q: image is missing: add 'image: <repository:tag>' (it must exist on the Docker engine)", name)
	}
	switch {
	case s.Role == "":
		p.add(at(), "service %q: role is missing: set one of %s, or x-<name> for a custom role", name, strings.Join(KnownRoles, ", "))
	case contains(KnownRoles, s.Role), strings.HasPrefix(s.Role, "x-") && len(s.Role) > 2:
	default:
		p.add(at("role"), "service %q: unknown role %q%s; known roles: %s (or x-<name> for a custom role)", name, s.Role, didYouMean(s.Role, KnownRoles), strings.Join(KnownRoles, ", "))
	}
	if s.Region != "" && !nameRE.MatchString(s.Region) {
		p.add(at("region"), "service %q: region %q: use lower-case letters and digits, e.g. 'a'", name, s.Region)
	}
	for i, n := range s.Networks {
		if !nameRE.MatchString(n) {
			p.add(at("networks", strconv.Itoa(i)), "service %q: network %q: use lower-case letters, digits and '-'", name, n)
		}
	}
	byPort := map[int]string{}
	for _, pn := range sortedKeys(s.Ports) {
		port := s.Ports[pn]
		if port < 1 || port > 65535 {
			p.add(at("ports", pn), "service %q: port %s is %d: use 1-65535", name, pn, port)
		}
		if other, dup := byPort[port]; dup {
			p.add(at("ports", pn), "service %q: duplicate listen port %d (ports %s and %s): give each port name its own container port", name, port, other, pn)
		}
		byPort[port] = pn
	}
	p.validateReady(s)
	for i, dep := range s.DependsOn {
		if dep == name {
			p.add(at("depends_on", strconv.Itoa(i)), "service %q: depends on itself: remove %q from depends_on", name, dep)
		} else if _, ok := d.Services[dep]; !ok {
			p.add(at("depends_on", strconv.Itoa(i)), "service %q: depends_on names unknown service %q%s: services are %s", name, dep, didYouMean(dep, sortedKeys(d.Services)), strings.Join(sortedKeys(d.Services), ", "))
		}
	}
	for _, vn := range sortedKeys(s.Volumes) {
		if !nameRE.MatchString(vn) {
			p.add(at("volumes", vn), "service %q: volume name %q: use lower-case letters, digits and '-'", name, vn)
		}
		if !path.IsAbs(s.Volumes[vn]) {
			p.add(at("volumes", vn), "service %q: volume %s mount path %q must be absolute", name, vn, s.Volumes[vn])
		}
	}
	mounts := map[string]string{}
	for _, vn := range sortedKeys(s.Volumes) {
		mounts[path.Clean(s.Volumes[vn])] = "volume " + vn
	}
	for _, mp := range sortedKeys(s.Tmpfs) {
		switch {
		case !path.IsAbs(mp):
			p.add(at("tmpfs", mp), "service %q: tmpfs mount path %q must be absolute", name, mp)
		case mounts[path.Clean(mp)] != "":
			p.add(at("tmpfs", mp), "service %q: tmpfs %s is also the mount path of %s: keep one (an overlay removes a base volume with '<name>: null')", name, mp, mounts[path.Clean(mp)])
		}
		if strings.ContainsAny(s.Tmpfs[mp], " \t\n") {
			p.add(at("tmpfs", mp), "service %q: tmpfs %s: options %q: write them comma-separated without spaces, e.g. size=64m,mode=0755", name, mp, s.Tmpfs[mp])
		}
	}
	for i, f := range s.Files {
		p.validateFile(d, s, i, f)
	}
	if s.Control != nil {
		if s.Role != "edge" {
			p.add(at("control"), "service %q: control commands are only for the edge (role %q): move them to the service with role edge", name, s.Role)
		}
		for key, cmd := range map[string][]string{"drain": s.Control.Drain, "enable": s.Control.Enable, "sessions": s.Control.Sessions} {
			if len(cmd) == 0 {
				p.add(at("control"), "service %q: control.%s is missing: give the command as a list, e.g. [sh, -c, \"...\"]", name, key)
				continue
			}
			for _, arg := range cmd {
				if _, err := template.New("").Parse(arg); err != nil {
					p.add(at("control", key), "service %q: control.%s: %v", name, key, err)
				}
			}
		}
		for _, arg := range s.Control.Serving {
			if _, err := template.New("").Parse(arg); err != nil {
				p.add(at("control", "serving"), "service %q: control.serving: %v", name, err)
			}
		}
	}
}

func (p *parser) validateReady(s *ServiceSpec) {
	name, r := s.Name, s.Ready
	at := func(k ...string) int { return p.line(append([]string{"services", name, "ready"}, k...)...) }
	banner := r.Port != "" || r.Expect != ""
	switch {
	case banner && len(r.Exec) > 0:
		p.add(at(), "service %q: ready has both port/expect and exec: keep one probe", name)
	case banner:
		if _, ok := s.Ports[r.Port]; !ok {
			p.add(at("port"), "service %q: ready.port %q is not one of its ports (%s)%s", name, r.Port, strings.Join(sortedKeys(s.Ports), ", "), didYouMean(r.Port, sortedKeys(s.Ports)))
		}
		if r.Expect == "" {
			p.add(at(), "service %q: ready.expect is missing: give a regexp for the banner's first line, e.g. '^220 '", name)
		} else if _, err := regexp.Compile(r.Expect); err != nil {
			p.add(at("expect"), "service %q: ready.expect is not a regexp: %v", name, err)
		}
	}
}

func (p *parser) validateFile(d *Descriptor, s *ServiceSpec, i int, f FileSpec) {
	name := s.Name
	l := p.line("services", name, "files", strconv.Itoa(i))
	if !path.IsAbs(f.Path) {
		p.add(l, "service %q: file %q: path must be absolute (inside the container)", name, f.Path)
	}
	switch {
	case f.Template != "" && f.Source != "":
		p.add(l, "service %q: file %s has both template and source: keep one", name, f.Path)
	case f.Template == "" && f.Source == "":
		p.add(l, "service %q: file %s has neither template nor source: add one", name, f.Path)
	case f.Template != "":
		if f.Render {
			p.add(l, "service %q: file %s: render is only for source files (templates are always rendered)", name, f.Path)
		}
		if _, err := template.New(f.Path).Parse(f.Template); err != nil {
			p.add(p.line("services", name, "files", strconv.Itoa(i), "template"), "service %q: file %s: template: %v", name, f.Path, err)
		}
	default:
		srcLine := p.line("services", name, "files", strconv.Itoa(i), "source")
		if _, err := d.sourcePath(f.Source); err != nil {
			p.add(srcLine, "service %q: file %s: %v", name, f.Path, err)
		} else if len(f.Edits) > 0 {
			if b, err := d.readSource(f.Source); err != nil {
				p.add(srcLine, "service %q: file %s: %v", name, f.Path, err)
			} else if _, err := f.edited(string(b)); err != nil {
				p.add(p.line("services", name, "files", strconv.Itoa(i), "edits"), "service %q: file %s (source %s): %v", name, f.Path, f.Source, err)
			}
		}
	}
	if f.Template != "" && len(f.Edits) > 0 {
		if _, err := f.edited(f.Template); err != nil {
			p.add(p.line("services", name, "files", strconv.Itoa(i), "edits"), "service %q: file %s (template): %v", name, f.Path, err)
		}
	}
	if f.Mode > 0o7777 {
		p.add(l, "service %q: file %s: mode %o is not a file mode: write it in octal, e.g. 0640", name, f.Path, f.Mode)
	}
	if f.Owner != "" {
		if _, _, err := parseOwner(f.Owner); err != nil {
			p.add(l, "service %q: file %s: %v", name, f.Path, err)
		}
	}
}

func (p *parser) validateLinks(d *Descriptor) {
	names := map[string]int{}
	listens := map[int]string{}
	for i, l := range d.Links {
		idx := strconv.Itoa(i)
		at := func(k string) int { return p.line("links", idx, k) }
		label := l.Name
		if label == "" {
			label = "#" + idx
			p.add(p.line("links", idx), "link #%d: name is missing", i)
		} else if !nameRE.MatchString(l.Name) {
			p.add(at("name"), "link %q: names use lower-case letters, digits and '-'", l.Name)
		}
		if prev, dup := names[l.Name]; dup && l.Name != "" {
			p.add(at("name"), "link %q: defined twice (links #%d and #%d): rename one", l.Name, prev, i)
		}
		names[l.Name] = i
		switch {
		case l.Listen < 1 || l.Listen > 65535:
			p.add(at("listen"), "link %q: listen %d: use a port 1-65535 inside the toxiproxy container", label, l.Listen)
		case l.Listen == 8474:
			p.add(at("listen"), "link %q: listen 8474 is Toxiproxy's API port: pick another", label)
		default:
			if other, dup := listens[l.Listen]; dup {
				p.add(at("listen"), "link %q: duplicate listen port %d (also link %q): give each link its own port", label, l.Listen, other)
			}
			listens[l.Listen] = label
		}
		svc, port, ok := strings.Cut(l.Upstream, ":")
		if !ok || svc == "" || port == "" {
			p.add(at("upstream"), "link %q: upstream %q must be service:port", label, l.Upstream)
			continue
		}
		s, ok := d.Services[svc]
		if !ok {
			p.add(at("upstream"), "link %q: upstream names unknown service %q%s", label, svc, didYouMean(svc, sortedKeys(d.Services)))
			continue
		}
		if _, err := upstreamPort(s, port); err != nil {
			p.add(at("upstream"), "link %q: upstream %q: %v", label, l.Upstream, err)
		}
		p.validateLinkEnds(d, l, label, at)
	}
}

// validateLinkEnds checks a link's from and to, which fault selectors
// match: from is who connects (clients, a service or a role), to the
// upstream's service or its role.
func (p *parser) validateLinkEnds(d *Descriptor, l LinkSpec, label string, at func(string) int) {
	ends := append([]string{ClientsEnd}, sortedKeys(d.Services)...)
	switch {
	case l.From == "":
		p.add(at("name"), "link %q: from is missing: say who opens its connections: %s, a service or a role (e.g. from: edge)", label, ClientsEnd)
	case l.From != ClientsEnd && d.Services[l.From] == nil && !d.hasRole(l.From):
		p.add(at("from"), "link %q: from %q is not %s, a service or a role of this stack%s: fault selectors (from=...) match it",
			label, l.From, ClientsEnd, didYouMean(l.From, ends))
	}
	svc, _, _ := strings.Cut(l.Upstream, ":")
	if s, ok := d.Services[svc]; ok && l.To != "" && l.To != svc && l.To != s.Role {
		p.add(at("to"), "link %q: to %q is neither its upstream's service %q nor that service's role %q: write to: %s, or leave it out",
			label, l.To, svc, s.Role, svc)
	}
}

// upstreamPort resolves a link's upstream port (a name or a number) to a container port.
func upstreamPort(s *ServiceSpec, port string) (int, error) {
	if n, ok := s.Ports[port]; ok {
		return n, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0, fmt.Errorf("service %q has no port %q%s (ports: %s)", s.Name, port, didYouMean(port, sortedKeys(s.Ports)), strings.Join(sortedKeys(s.Ports), ", "))
	}
	for _, p := range s.Ports {
		if p == n {
			return n, nil
		}
	}
	return 0, fmt.Errorf("service %q does not declare port %d (ports: %s): add it to its ports", s.Name, n, strings.Join(sortedKeys(s.Ports), ", "))
}

func linkNames(d *Descriptor) []string {
	var out []string
	for _, l := range d.Links {
		out = append(out, l.Name)
	}
	return out
}

// topoOrder returns the services in dependency order (ties by name), or a
// cycle when there is one. Unknown dependencies are ignored here.
func topoOrder(services map[string]*ServiceSpec) (order, cycle []string) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		deps := append([]string(nil), services[n].DependsOn...)
		sort.Strings(deps)
		for _, dep := range deps {
			if _, ok := services[dep]; !ok || dep == n {
				continue
			}
			switch color[dep] {
			case grey:
				for i, s := range stack {
					if s == dep {
						cycle = append(append([]string{}, stack[i:]...), dep)
					}
				}
				return false
			case white:
				if !visit(dep) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		order = append(order, n)
		return true
	}
	for _, n := range sortedKeys(services) {
		if color[n] == white && !visit(n) {
			return nil, cycle
		}
	}
	return order, nil
}

// didYouMean suggests the closest candidate, or "".
func didYouMean(s string, candidates []string) string { return suggest.DidYouMean(s, candidates) }

// validateLinkRefs reports every entry of refs (a name -> link map under
// section) whose link the descriptor does not have.
func (p *parser) validateLinkRefs(d *Descriptor, section, what, fix string, refs map[string]string) {
	for _, name := range sortedKeys(refs) {
		ln := refs[name]
		if _, ok := d.Link(ln); !ok {
			p.add(p.line(section, name), "%s %q: unknown link %q%s: %s (%s)", what, name, ln, didYouMean(ln, linkNames(d)), fix, strings.Join(linkNames(d), ", "))
		}
	}
}
