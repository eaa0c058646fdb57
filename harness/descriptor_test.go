package harness

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestBrokenDescriptorListsEveryProblem is acceptance 3: one descriptor with
// several mistakes yields ONE error listing all of them with line numbers.
func TestBrokenDescriptorListsEveryProblem(t *testing.T) {
	_, err := Load("testdata/broken.yaml")
	if err == nil {
		t.Fatal("Load(broken.yaml) succeeded")
	}
	var de *DescriptorError
	if !errors.As(err, &de) {
		t.Fatalf("error is %T, want *DescriptorError: %v", err, err)
	}
	t.Logf("the error as a user sees it:\n%v", err)
	want := []string{
		`testdata/broken.yaml:3: users.password_format "pass" must contain exactly one integer verb`,
		`testdata/broken.yaml:7: endpoint "smtp": unknown link "client-smtpp" (did you mean "client-smtp"?)`,
		`testdata/broken.yaml:13: link "edge-mta": duplicate listen port 10025 (also link "client-smtp")`,
		`testdata/broken.yaml:14: link "edge-mta": upstream names unknown service "mta-x" (did you mean "mta-a"?)`,
		`testdata/broken.yaml:17: link "wan": upstream "store-b:doveadm": service "store-b" has no port "doveadm"`,
		`testdata/broken.yaml:22: service "edge": duplicate listen port 25 (ports smtp and submission)`,
		`testdata/broken.yaml:23: service "edge": depends_on names unknown service "mta-c" (did you mean "mta-a"?)`,
		`testdata/broken.yaml:24: service "edge": stop_timeout: "10 seconds" is not a duration`,
		`testdata/broken.yaml:31: service "mta-a": unknown key "imgae" (did you mean "image"?)`,
		`testdata/broken.yaml:32: service "mta-a": control commands are only for the edge`,
		`testdata/broken.yaml:36: service "store-b": image is missing`,
		`testdata/broken.yaml:38: service "store-b": unknown role "stor" (did you mean "store"?); known roles: edge, mta, store, standby`,
		`testdata/broken.yaml:40: service "store-b": ready.port "imapp" is not one of its ports (imap) (did you mean "imap"?)`,
		`testdata/broken.yaml:40: service "store-b": ready.timeout: "soon" is not a duration`,
		`testdata/broken.yaml:30: service "mta-a": dependency cycle mta-a -> store-b -> mta-a`,
		`testdata/broken.yaml:43: service "store-b": file /etc/a has both template and source: keep one`,
		`testdata/broken.yaml:46: service "store-b": file /etc/b has neither template nor source: add one`,
		`testdata/broken.yaml:48: service "store-b": file /etc/c: source testdata/missing.conf is missing`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q", w)
		}
	}
	if !strings.HasPrefix(msg, "testdata/broken.yaml: ") || !strings.Contains(strings.SplitN(msg, "\n", 2)[0], "problems") {
		t.Errorf("first line should count the problems: %q", strings.SplitN(msg, "\n", 2)[0])
	}
	for i := 1; i < len(de.Problems); i++ {
		if de.Problems[i].Line < de.Problems[i-1].Line {
			t.Errorf("problems not sorted by line: %d after %d", de.Problems[i].Line, de.Problems[i-1].Line)
		}
	}
}

func TestParseProblems(t *testing.T) {
	const base = "version: 1\nservices:\n"
	tests := []struct {
		name, yaml string
		want       []string // substrings of the single error
	}{
		{"empty", "", []string{"the descriptor is empty"}},
		{"not yaml", "version: [1\n", []string{"x.yaml:"}},
		{"a second document", base + "  a: {image: i, role: mta}\n---\nversion: 2\n", []string{"x.yaml:4: a second YAML document (after ---)"}},
		{"garbage after ---", base + "  a: {image: i, role: mta}\n---\n{ [\n", []string{"x.yaml:5:"}},
		// YAML breaks lines at these, editors do not: the line in a message
		// would not be the line shown, and a key could hide on another's line.
		{"a carriage return alone", "\r0", []string{"x.yaml:1: a carriage return (\\r) not followed by a newline"}},
		{"a key after a line separator", base + "  a: {image: i, role: mta}\u2028  b: {image: i, role: mta}\n", []string{"x.yaml:3: a line separator (U+2028)"}},
		{"windows line ends", "version: 1\r\nservices:\r\n  a: {image: i, role: mta}\r\n", nil},
		{"top-level unknown key", "version: 1\nservice: {}\n", []string{`x.yaml:2: unknown key "service" (did you mean "services"?)`, "no services"}},
		{"bad version", "version: 2\nservices: {a: {image: i, role: mta}}\n", []string{"x.yaml:1: version is 2"}},
		{"missing image and role", base + "  a: {}\n", []string{`x.yaml:3: service "a": image is missing`, `x.yaml:3: service "a": role is missing`}},
		{"custom role ok", base + "  a: {image: i, role: x-ldap}\n", nil},
		{"bare x- role", base + "  a: {image: i, role: x-}\n", []string{`unknown role "x-"`}},
		{"self dependency", base + "  a: {image: i, role: mta, depends_on: [a]}\n", []string{`x.yaml:3: service "a": depends on itself`}},
		{"long cycle", base + "  a: {image: i, role: mta, depends_on: [b]}\n  b: {image: i, role: mta, depends_on: [c]}\n  c: {image: i, role: mta, depends_on: [a]}\n",
			[]string{"dependency cycle a -> b -> c -> a"}},
		{"two edges", base + "  a: {image: i, role: edge}\n  b: {image: i, role: edge}\n", []string{`service "b": a second service with role edge`}},
		{"control needs all commands", base + "  a: {image: i, role: edge, control: {drain: [x]}}\n", []string{"control.enable is missing", "control.sessions is missing"}},
		{"ready both probes", base + "  a: {image: i, role: mta, ports: {p: 1}, ready: {port: p, expect: x, exec: [true]}}\n", []string{"both port/expect and exec"}},
		{"ready bad regexp", base + "  a: {image: i, role: mta, ports: {p: 1}, ready: {port: p, expect: '('}}\n", []string{"ready.expect is not a regexp"}},
		{"port range", base + "  a: {image: i, role: mta, ports: {p: 70000}}\n", []string{"port p is 70000"}},
		{"volume path relative", base + "  a: {image: i, role: mta, volumes: {data: srv}}\n", []string{`volume data mount path "srv" must be absolute`}},
		{"wrong type", base + "  a: {image: i, role: mta, ports: {p: high}}\n", []string{"x.yaml:3: cannot unmarshal"}},
		{"bad template", base + "  a: {image: i, role: mta, files: [{path: /x, template: '{{.Users'}]}\n", []string{"file /x: template:"}},
		{"render on template", base + "  a: {image: i, role: mta, files: [{path: /x, template: y, render: true}]}\n", []string{"render is only for source files"}},
		{"relative file path", base + "  a: {image: i, role: mta, files: [{path: x, template: y}]}\n", []string{`file "x": path must be absolute`}},
		{"bad owner", base + "  a: {image: i, role: mta, files: [{path: /x, template: y, owner: dovecot}]}\n", []string{`owner "dovecot" must be numeric uid:gid`}},
		{"links need proxy image", base + "  a: {image: i, role: mta, ports: {p: 1}}\nlinks: [{name: l, listen: 1000, upstream: 'a:p'}]\n", []string{"proxy.image is missing"}},
		{"link on api port", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 8474, upstream: 'a:p'}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n", []string{"listen 8474 is Toxiproxy's API port"}},
		{"link upstream number not declared", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: 'a:2'}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n", []string{`service "a" does not declare port 2`}},
		{"link upstream malformed", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: a}]\nservices:\n  a: {image: i, role: mta}\n", []string{`upstream "a" must be service:port`}},
		{"duplicate link names", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: 'a:p'}, {name: l, listen: 1001, upstream: 'a:p'}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n", []string{`link "l": defined twice`}},
		{"replica on unknown link", "version: 1\nproxy: {image: t}\nlinks: [{name: store-a-imap, listen: 1000, upstream: 'a:p'}]\nreplicas: {store-a: store-a-imapp}\nservices:\n  a: {image: i, role: store, ports: {p: 1}}\n",
			[]string{`x.yaml:4: replica "store-a": unknown link "store-a-imapp" (did you mean "store-a-imap"?): name the link to its IMAP service`}},
		{"replica ok", "version: 1\nproxy: {image: t}\nlinks: [{name: store-a-imap, listen: 1000, upstream: 'a:p', from: clients}]\nreplicas: {store-a: store-a-imap}\nservices:\n  a: {image: i, role: store, ports: {p: 1}}\n", nil},
		{"link from missing", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: 'a:p'}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n", []string{`link "l": from is missing`}},
		{"link from unknown", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: 'a:p', from: clientz}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n", []string{`link "l": from "clientz" is not clients, a service or a role of this stack (did you mean "clients"?)`}},
		{"link to not its upstream", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: 'a:p', from: b, to: b}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n  b: {image: i, role: edge}\n", []string{`link "l": to "b" is neither its upstream's service "a" nor that service's role "mta"`}},
		{"link ends by role ok", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: 1000, upstream: 'a:p', from: edge, to: mta}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n  b: {image: i, role: edge}\n", nil},
		{"primary region unknown", base + "  a: {image: i, role: mta, region: east}\nprimary_region: eats\n", []string{`primary_region "eats" is not a region of any service (did you mean "east"?)`}},
		{"users without domain", base + "  a: {image: i, role: mta}\nusers: {count: 2, name_format: 'u%d', password_format: 'p%d'}\n", []string{"users.domain is missing"}},
		{"proxy command with the API on every network", "version: 1\nproxy: {image: t, command: [-host, 0.0.0.0]}\nlinks: [{name: l, listen: 1000, upstream: 'a:p', from: clients}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n",
			[]string{`x.yaml:2: proxy.command must make the API listen on host mailchaos-toxiproxy-api`}},
		{"proxy command on the control host", "version: 1\nproxy: {image: t, command: [/toxiproxy, -host=mailchaos-toxiproxy-api]}\nlinks: [{name: l, listen: 1000, upstream: 'a:p', from: clients}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n", nil},
		{"users with random passwords", base + "  a: {image: i, role: mta}\nusers: {count: 2, domain: example.test, name_format: 'u%d'}\n", nil},
		{"users without a name format", base + "  a: {image: i, role: mta}\nusers: {count: 2, domain: example.test, password_format: 'p%d'}\n", []string{"users.name_format is missing"}},
		{"fraction for a port", base + "  a: {image: i, role: mta, ports: {p: 25.5}}\n", []string{`x.yaml:3: service "a": ports.p: 25.5 is not a whole number`}},
		{"nan for a count", "version: 1\nusers: {count: .nan, domain: d, name_format: 'u%d', password_format: 'p%d'}\n" + base[len("version: 1\n"):] + "  a: {image: i, role: mta}\n",
			[]string{"x.yaml:2: users.count: .nan is not a whole number"}},
		{"inf for a listen port", "version: 1\nproxy: {image: t}\nlinks: [{name: l, listen: .inf, upstream: 'a:p', from: clients}]\nservices:\n  a: {image: i, role: mta, ports: {p: 1}}\n",
			[]string{"x.yaml:3: link #0: listen: .inf is not a whole number"}},
		{"exponent for a mode", base + "  a: {image: i, role: mta, files: [{path: /x, template: y, mode: 4.2e2}]}\n", []string{"files.0.mode: 4.2e2 is not a whole number"}},
		{"too many users", "version: 1\nusers: {count: 100001, domain: d, name_format: 'u%d', password_format: 'p%d'}\n" + base[len("version: 1\n"):] + "  a: {image: i, role: mta}\n",
			[]string{"x.yaml:2: users.count is 100001: it must be from 0 to 100000"}},
		{"negative duration", base + "  a: {image: i, role: mta, stop_timeout: -5s}\n", []string{`x.yaml:3: service "a": stop_timeout: -5s is negative`}},
		{"endless duration", base + "  a: {image: i, role: mta, ready: {exec: [true], timeout: 2562047h}}\n", []string{`x.yaml:3: service "a": ready.timeout: 2562047h is longer than 24h0m0s`}},
		{"owner overflows", base + "  a: {image: i, role: mta, files: [{path: /x, template: y, owner: '4294967296:0'}]}\n", []string{`owner "4294967296:0" must be numeric uid:gid, each 0 to 4294967295`}},
		{"owner signed", base + "  a: {image: i, role: mta, files: [{path: /x, template: y, owner: '+1:-1'}]}\n", []string{`owner "+1:-1" must be numeric`}},
		{"duplicate service key", base + "  a: {image: i, role: mta}\n  a: {image: i, role: mta}\n", []string{`"a" is defined twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("x.yaml", []byte(tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if d == nil {
					t.Fatal("nil descriptor")
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadToyStack(t *testing.T) {
	d, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.ServiceNames(), ","); got != "back-a,back-b,front" {
		t.Errorf("start order %s", got)
	}
	if got := strings.Join(d.Regions(), ","); got != "a,b" {
		t.Errorf("regions %s", got)
	}
	if got := strings.Join(d.Networks(), ","); got != "core,region-a,region-b" {
		t.Errorf("networks %s", got)
	}
	f := d.Services["front"]
	if f.StopTimeout.Std() != 2*time.Second || f.Ready.Timeout.Std() != 20*time.Second {
		t.Errorf("durations: stop %v ready %v", f.StopTimeout.Std(), f.Ready.Timeout.Std())
	}
	if f.Files[0].Mode != 0o640 {
		t.Errorf("mode %o, want 640", f.Files[0].Mode)
	}
	if d.Name != "toy" {
		t.Errorf("name %q", d.Name)
	}
}

func TestLevenshteinAndSuggestions(t *testing.T) {
	if got := didYouMean("stor", KnownRoles); got != ` (did you mean "store"?)` {
		t.Errorf("got %q", got)
	}
	if got := didYouMean("zzzzzz", KnownRoles); got != "" {
		t.Errorf("far-off suggestion %q", got)
	}
}

// A few kilobytes of aliases of aliases must not keep validation busy
// (it visits an alias's value once per alias): such a descriptor is
// refused before it is walked, while real ones stay far below the bound.
func TestAliasExpansionBounded(t *testing.T) {
	const k = 200 // k services × k files × k edits: 8 million values from 3 KB
	many := func(alias string) string { return "[" + strings.TrimSuffix(strings.Repeat(alias+", ", k), ", ") + "]" }
	var b strings.Builder
	b.WriteString("version: 1\nx-e: &E {match: a, replace: b}\n")
	b.WriteString("x-f: &F {path: /x, template: a, edits: " + many("*E") + "}\n")
	b.WriteString("x-s: &S {image: i, role: mta, files: " + many("*F") + "}\nservices:\n")
	for i := range k {
		fmt.Fprintf(&b, "  s%d: *S\n", i)
	}
	start := time.Now()
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "bomb.yaml:1: the descriptor's aliases (*name) expand it to more than 200000 values") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusing took %s", d)
	}
	for _, path := range []string{referenceStack, eximCyrusStack, "../fixtures/stacks/defects/slow-delivery/stack.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			t.Fatal(err)
		}
		if n := expandedSize(root.Content[0], map[*yaml.Node]int{}); n > maxExpandedNodes/20 {
			t.Errorf("%s expands to %d values, too close to the bound %d", path, n, maxExpandedNodes)
		}
	}
}
