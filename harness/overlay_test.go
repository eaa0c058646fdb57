package harness

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestOverlayMergesIntoBase loads an overlay of the toy stack and checks
// each merge rule on the result.
func TestOverlayMergesIntoBase(t *testing.T) {
	d, err := Load("testdata/overlay/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "overlay" {
		t.Errorf("name %q: an overlay is named after its folder, not its base", d.Name)
	}
	// Links merge by name: wan-a-b keeps its upstream with a new port; wan-b-a is new.
	if l, ok := d.Link("wan-a-b"); !ok || l.Listen != 12002 || l.Upstream != "back-b:25" {
		t.Errorf("wan-a-b merged into %+v", l)
	}
	if l, ok := d.Link("wan-b-a"); !ok || l.Upstream != "back-a:25" {
		t.Errorf("wan-b-a not added: %+v", l)
	}
	if len(d.Links) != 4 {
		t.Errorf("%d links, want 4", len(d.Links))
	}
	front := d.Services["front"]
	if c := front.Control; c == nil || c.Drain[2] != "no drain" || c.Enable[2] != "enabled {{.Node}}" {
		t.Errorf("control: drain replaced, enable kept; got %+v", c)
	}
	if front.Image != "mailchaos/harness-test:dev" || front.Ready.Port != "smtp" {
		t.Errorf("front lost base fields: %+v", front)
	}
	back := d.Services["back-a"]
	if _, ok := back.Volumes["data"]; ok || back.Tmpfs["/data"] != "size=16m" {
		t.Errorf("volume data should be removed and /data be a tmpfs: volumes %v tmpfs %v", back.Volumes, back.Tmpfs)
	}
	if back.Env["ROLE"] != "back" || back.Env["EXTRA"] != "1" {
		t.Errorf("env merged into %v", back.Env)
	}
	if d.Services["back-b"].Volumes["data"] != "/data" {
		t.Error("back-b's volume was touched")
	}
	// Files merge by path; a base source stays relative to the base's folder.
	if len(back.Files) != 2 {
		t.Fatalf("back-a files %+v", back.Files)
	}
	if src := back.Files[0].Source; !filepath.IsAbs(src) || !strings.HasSuffix(src, filepath.Join("toy", "configs", "back.conf")) || !back.Files[0].Render {
		t.Errorf("base file: %+v", back.Files[0])
	}
	data := TemplateData{RunID: "r1", Service: "back-a", Domain: "example.test", Users: GenerateUsers(d.Users, 1), Links: linkInfos(d)}
	files, err := renderFiles(d, back, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files[0].Data); got != "# edited config for back-a in run r1\n" {
		t.Errorf("edited base file %q", got)
	}
	if got := string(files[1].Data); got != "extra for {{.Service}}\n" {
		t.Errorf("overlay source (relative to the overlay, not rendered) %q", got)
	}
	files, err = renderFiles(d, front, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files[0].Data); !strings.HasPrefix(got, "user0001@example.test:pass-0001\n") || !strings.HasSuffix(got, "\nextra@example.test:x\n") {
		t.Errorf("appended template %q", got)
	}
	// The base itself is untouched by loading an overlay of it.
	base, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if base.Services["back-a"].Volumes["data"] != "/data" || len(base.Services["back-a"].Files) != 1 {
		t.Error("loading the overlay changed its base")
	}
}

func TestOverlayProblems(t *testing.T) {
	tests := []struct {
		name, file, yaml string
		want             []string
	}{
		{"cycle", "testdata/overlay/cycle-a.yaml", "", []string{"name each other as base", "cycle-a.yaml -> ", "cycle-b.yaml -> "}},
		{"missing base", "testdata/overlay/x.yaml", "version: 1\nbase: nope.yaml\n", []string{"x.yaml:2: base nope.yaml:", "relative to this descriptor's folder"}},
		{"empty base", "testdata/overlay/x.yaml", "version: 1\nbase: \n", []string{"x.yaml:2: base must be the path"}},
		// A base may be outside the overlay's folder, so it is held to being a descriptor.
		{"base not yaml", "testdata/overlay/x.yaml", "version: 1\nbase: /etc/passwd\n", []string{"x.yaml:2: base /etc/passwd: a base is a stack descriptor, a .yaml file: name one"}},
		{"broken base", "testdata/overlay/x.yaml", "version: 1\nbase: ../broken.yaml\n", []string{"base ../broken.yaml is not a valid stack descriptor", "testdata/broken.yaml:36:"}},
		{"edit that matches nothing, tmpfs over a volume", "testdata/overlay/broken.yaml", "", []string{
			`broken.yaml:5: service "back-a": tmpfs /data is also the mount path of volume data`,
			`broken.yaml:8: service "back-a": file /etc/back.conf (source `,
			`edit #1: "no such text" matches nothing`}},
		{"bad edit regexp", "testdata/overlay/x.yaml", "version: 1\nbase: ../toy/stack.yaml\nservices:\n  back-a:\n    files: [{path: /etc/back.conf, edits: [{match: '('}]}]\n", []string{"x.yaml:5:", "match is not a regexp"}},
		{"template edit", "testdata/overlay/x.yaml", "version: 1\nbase: ../toy/stack.yaml\nservices:\n  front:\n    files: [{path: /etc/mailchaos/tls/ca.pem, edits: [{match: 'KEY', replace: x}]}]\n", []string{"file /etc/mailchaos/tls/ca.pem (template): edit #1"}},
		{"relative tmpfs", "testdata/overlay/x.yaml", "version: 1\nbase: ../toy/stack.yaml\nservices:\n  back-b:\n    tmpfs: {data: ''}\n", []string{`tmpfs mount path "data" must be absolute`}},
		{"unknown key still caught", "testdata/overlay/x.yaml", "version: 1\nbase: ../toy/stack.yaml\nservices:\n  back-b:\n    tmpf: {}\n", []string{`x.yaml:5: service "back-b": unknown key "tmpf" (did you mean "tmpfs"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.yaml == "" {
				_, err = Load(tt.file)
			} else {
				_, err = Parse(tt.file, []byte(tt.yaml))
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

// A base that is a named pipe would block Load for ever: refused.
func TestOverlayBaseNotAPipe(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(filepath.Join(dir, "x.yaml"), []byte("version: 1\nbase: pipe.yaml\n"))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:2: base pipe.yaml: not a regular file (mode p") {
		t.Fatalf("err = %v", err)
	}
}

// TestEditsAndAppend covers the text edits on their own.
func TestEditsAndAppend(t *testing.T) {
	f := FileSpec{Edits: []Edit{{Match: `(?m) check( backup)?$`, Replace: "$1"}}, Append: "tail\n"}
	got, err := f.edited("server a x check\nserver b y check backup\nno newline")
	if err != nil {
		t.Fatal(err)
	}
	if want := "server a x\nserver b y backup\nno newline\ntail\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := (FileSpec{Edits: []Edit{{Match: "absent"}}}).edited("text"); err == nil {
		t.Error("an edit that matches nothing passed")
	}
}

// TestOverlayOfTheReferenceNeedsNoCopies guards the point of overlays: the
// reference stack's own files stay where they are.
func TestOverlayOfTheReferenceNeedsNoCopies(t *testing.T) {
	dir := t.TempDir()
	ref, err := filepath.Abs(referenceStack)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stack.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nbase: "+ref+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Load(referenceStack)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Services) != len(base.Services) || !filepath.IsAbs(d.Services["edge"].Files[0].Source) {
		t.Errorf("overlay of the reference: %d services, edge file %+v", len(d.Services), d.Services["edge"].Files[0])
	}
}

var serverCheck = regexp.MustCompile(`(?m)^\s*server .* check\b`)

// TestDefectVariantsRender renders every file of every stack variant under
// fixtures/stacks/defects and fixtures/stacks/doctor: each edit must still
// match the reference file it edits, and a Dovecot file must keep its
// braces balanced (an edit that stops at a template's "}}" leaves a stray
// "}" Dovecot refuses to start on).
func TestDefectVariantsRender(t *testing.T) {
	variants, _ := filepath.Glob("../fixtures/stacks/defects/*/stack.yaml")
	doctorVariants, _ := filepath.Glob("../fixtures/stacks/doctor/*/stack.yaml")
	variants = append(variants, doctorVariants...)
	if len(variants) == 0 {
		t.Skip("no stack variants")
	}
	for _, path := range variants {
		d, err := Load(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for _, name := range d.ServiceNames() {
			s := d.Services[name]
			data := TemplateData{RunID: "r1", Service: name, Domain: d.Users.Domain, Users: GenerateUsers(d.Users, 2), Links: linkInfos(d)}
			files, err := renderFiles(d, s, data)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			for _, f := range files {
				if strings.HasPrefix(f.Path, "/etc/dovecot/") && strings.Count(string(f.Data), "{") != strings.Count(string(f.Data), "}") {
					t.Errorf("%s: %s %s has unbalanced braces:\n%s", path, name, f.Path, f.Data)
				}
				if strings.Contains(path, "replication-off") && strings.Contains(string(f.Data), "mail_replica =") {
					t.Errorf("%s: %s %s still names a replica:\n%s", path, name, f.Path, f.Data)
				}
				if strings.Contains(path, "submission-auth-without-tls") && f.Path == "/etc/postfix/master.cf" &&
					(strings.Contains(string(f.Data), "smtpd_tls_auth_only=yes") || strings.Contains(string(f.Data), "smtpd_tls_security_level=encrypt")) {
					t.Errorf("%s: %s %s still requires TLS for AUTH:\n%s", path, name, f.Path, f.Data)
				}
				if strings.Contains(path, "no-edge-health-checks") && serverCheck.Match(f.Data) {
					t.Errorf("%s: %s %s still checks a server:\n%s", path, name, f.Path, serverCheck.Find(f.Data))
				}
			}
		}
	}
}
