package harness

import (
	"archive/tar"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestNewRunID(t *testing.T) {
	id := NewRunID()
	if !regexp.MustCompile(`^\d{8}-\d{6}-[0-9a-f]{4}$`).MatchString(id) {
		t.Errorf("run id %q", id)
	}
}

func TestGenerateUsers(t *testing.T) {
	spec := UsersSpec{Count: 1000, Domain: "example.test", NameFormat: "user%04d", PasswordFormat: "pass-%04d"}
	users := GenerateUsers(spec, -1)
	if len(users) != 1000 {
		t.Fatalf("%d users", len(users))
	}
	if u := users[0]; u != (User{Index: 1, Name: "user0001", Address: "user0001@example.test", Password: "pass-0001"}) {
		t.Errorf("first user %+v", u)
	}
	if u := users[999]; u.Address != "user1000@example.test" {
		t.Errorf("last user %+v", u)
	}
	if n := len(GenerateUsers(spec, 7)); n != 7 {
		t.Errorf("override: %d users", n)
	}
	// password_format fixes the passwords: the same on every run.
	if again := GenerateUsers(spec, -1); again[41].Password != "pass-0042" || again[41] != users[41] {
		t.Errorf("fixed passwords changed between runs: %+v, %+v", users[41], again[41])
	}
}

// TestGenerateUsersRandomPasswords: without password_format every user
// gets a password of its own, new on every run, that any config file takes
// unquoted.
func TestGenerateUsersRandomPasswords(t *testing.T) {
	spec := UsersSpec{Count: 1000, Domain: "example.test", NameFormat: "user%04d"}
	run1, run2 := GenerateUsers(spec, -1), GenerateUsers(spec, -1)
	if len(run1) != 1000 || len(run2) != 1000 {
		t.Fatalf("%d and %d users", len(run1), len(run2))
	}
	if run1[0].Address != "user0001@example.test" || run1[0].Name != "user0001" || run1[0].Index != 1 {
		t.Errorf("first user %+v", run1[0])
	}
	seen := map[string]bool{}
	plain := regexp.MustCompile(`^[A-Z2-7]{26}$`)
	for i := range run1 {
		for _, pw := range []string{run1[i].Password, run2[i].Password} {
			if !plain.MatchString(pw) {
				t.Fatalf("user %d: password %q is not 26 characters of A-Z and 2-7", i+1, pw)
			}
			if seen[pw] {
				t.Fatalf("user %d: password %q drawn twice", i+1, pw)
			}
			seen[pw] = true
		}
	}
}

// TestGenerateTLS checks the chain, the SANs, and that a TLS handshake on
// loopback verifies against the CA.
func TestGenerateTLS(t *testing.T) {
	m, err := GenerateTLS("r1", []string{"edge", "store-a", "edge"})
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(m.CertPEM))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cert.DNSNames, ","); got != "edge,store-a,localhost" {
		t.Errorf("DNS SANs %s", got)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IP SANs %v", cert.IPAddresses)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v", cert.PublicKeyAlgorithm)
	}
	pair, err := tls.X509KeyPair([]byte(m.CertPEM), []byte(m.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(m.CACertPEM)) {
		t.Fatal("CA PEM")
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, name := range []string{"store-a", "localhost"} {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Errorf("handshake as %s: %v", name, err)
			continue
		}
		c.Close()
		break // the listener accepts once
	}
}

func TestRenderFiles(t *testing.T) {
	d, err := Load("testdata/toy/stack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := TemplateData{RunID: "r1", Service: "front", Domain: "example.test",
		Users: GenerateUsers(d.Users, 2), TLS: TLSMaterial{CACertPEM: "CA"}, Links: linkInfos(d)}
	files, err := renderFiles(d, d.Services["front"], data)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files[0].Data); got != "user0001@example.test:pass-0001\nuser0002@example.test:pass-0002\n\n" {
		t.Errorf("users file %q", got)
	}
	if files[0].Mode != 0o640 || files[0].GID != 101 || files[1].Mode != 0o644 {
		t.Errorf("modes/owner: %o %d %o", files[0].Mode, files[0].GID, files[1].Mode)
	}
	data.Service = "back-a"
	files, err = renderFiles(d, d.Services["back-a"], data)
	if err != nil || string(files[0].Data) != "# back config for back-a in run r1\n" {
		t.Errorf("source render: %q %v", files[0].Data, err)
	}
	// Links in templates, and a missing key is an error, not "<no value>".
	d.Services["back-a"].Files = []FileSpec{{Path: "/x", Template: `{{(index .Links "wan-a-b").Listen}}`}}
	files, err = renderFiles(d, d.Services["back-a"], data)
	if err != nil || string(files[0].Data) != "12001" {
		t.Errorf("links: %q %v", files[0].Data, err)
	}
	d.Services["back-a"].Files = []FileSpec{{Path: "/x", Template: `{{.Nope}}`}}
	if _, err := renderFiles(d, d.Services["back-a"], data); err == nil {
		t.Error("unknown field rendered")
	}
	args, err := renderArgs([]string{"sh", "-c", "drain {{.Node}}"}, controlData{Node: "mta-a"})
	if err != nil || args[2] != "drain mta-a" {
		t.Errorf("control args %q %v", args, err)
	}
}

func TestTarFiles(t *testing.T) {
	r, err := tarFiles([]renderedFile{{Path: "/etc/a/b", Mode: 0o600, UID: 5, GID: 6, Data: []byte("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tr)
	if h.Name != "etc/a/b" || h.Mode != 0o600 || h.Uid != 5 || h.Gid != 6 || string(body) != "hi" {
		t.Errorf("header %+v body %q", h, body)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Error("extra entries (directories must not be in the archive)")
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("port %d zero or repeated", p)
		}
		seen[p] = true
	}
	// Each is free again once returned.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])))
	if err != nil {
		t.Errorf("port %d not bindable: %v", ports[0], err)
	} else {
		l.Close()
	}
}
