package harness

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"text/template"
	"time"
)

// User is one generated test user.
type User struct {
	// Index is the 1-based index the name and password were formatted from.
	Index int
	// Name is the local part, e.g. user0001.
	Name string
	// Address is Name@Domain.
	Address string
	// Password is the user's password.
	Password string
}

// TLSMaterial is the per-run certificate authority and server certificate (PEM).
type TLSMaterial struct {
	// CACertPEM is the run's CA certificate; clients trust it.
	CACertPEM string
	// CertPEM is the server certificate signed by the CA.
	CertPEM string
	// KeyPEM is the server certificate's private key (PKCS#8).
	KeyPEM string
}

// LinkInfo is what templates see of a link.
type LinkInfo struct {
	// Listen is the port inside the toxiproxy container (reach it as toxiproxy:<Listen>).
	Listen int
	// Upstream is the link's service:port.
	Upstream string
}

// TemplateData is the data every templated file (and every control
// command) is rendered with.
type TemplateData struct {
	// RunID is the run id.
	RunID string
	// Service is the service the file is written into.
	Service string
	// Domain is the users' mail domain.
	Domain string
	// Users are the generated test users.
	Users []User
	// TLS is the per-run certificate material.
	TLS TLSMaterial
	// Links maps link name to its listen port and upstream.
	Links map[string]LinkInfo
	// Secret is a random string (NewPassword) drawn once per run, for the
	// credentials services share with each other (a replication password):
	// unlike one made from the run id, nobody who reads the report knows it.
	Secret string
}

// NewRunID returns a run id of the form YYYYMMDD-HHMMSS-<4 hex>.
func NewRunID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// GenerateUsers returns the descriptor's users; count < 0 means the
// descriptor's count. Each password is the descriptor's password_format of
// the index when it has one (fixed: the same on every run), and otherwise
// drawn from crypto/rand for this call (NewPassword), so that no run's
// passwords can be guessed from another's.
func GenerateUsers(u UsersSpec, count int) []User {
	if count < 0 {
		count = u.Count
	}
	if u.NameFormat == "" {
		return nil
	}
	users := make([]User, count)
	for i := range users {
		n := fmt.Sprintf(u.NameFormat, i+1)
		pw := NewPassword()
		if u.PasswordFormat != "" {
			pw = fmt.Sprintf(u.PasswordFormat, i+1)
		}
		users[i] = User{Index: i + 1, Name: n, Address: n + "@" + u.Domain, Password: pw}
	}
	return users
}

// NewPassword returns a random password: 26 characters of base32 (A-Z,
// 2-7; 128 bits from crypto/rand), which need no quoting in any
// configuration file format a stack writes them into.
func NewPassword() string { return rand.Text() }

// GenerateTLS creates a fresh ECDSA P-256 CA and a server certificate for
// names (plus localhost and 127.0.0.1), valid for 7 days.
func GenerateTLS(runID string, names []string) (TLSMaterial, error) {
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSMaterial{}, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mailchaos CA " + runID, Organization: []string{"mailchaos"}},
		NotBefore:             now,
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSMaterial{}, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return TLSMaterial{}, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSMaterial{}, fmt.Errorf("generate server key: %w", err)
	}
	dns := []string{}
	seen := map[string]bool{}
	for _, n := range append(append([]string{}, names...), "localhost") {
		if n != "" && !seen[n] && net.ParseIP(n) == nil {
			seen[n] = true
			dns = append(dns, n)
		}
	}
	cn := dns[0]
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mailchaos"}},
		NotBefore:    now,
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return TLSMaterial{}, fmt.Errorf("create server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return TLSMaterial{}, fmt.Errorf("marshal server key: %w", err)
	}
	return TLSMaterial{
		CACertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		CertPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n.Add(n, big.NewInt(1))
}

// certNames returns the SANs for a descriptor: tls.names plus every service name.
func certNames(d *Descriptor) []string {
	names := append([]string{}, d.TLS.Names...)
	svc := sortedKeys(d.Services)
	names = append(names, svc...)
	return names
}

// renderedFile is a file ready to be copied into a container.
type renderedFile struct {
	Path     string
	Mode     int64
	UID, GID int
	Data     []byte
}

// renderFiles renders a service's files with data.
func renderFiles(d *Descriptor, s *ServiceSpec, data TemplateData) ([]renderedFile, error) {
	var out []renderedFile
	for _, f := range s.Files {
		var content []byte
		text, render := f.Template, true
		if f.Source != "" {
			// Checked again here: the folder may have changed since Parse.
			b, err := d.readSource(f.Source)
			if err != nil {
				return nil, fmt.Errorf("service %q: file %s: %w", s.Name, f.Path, err)
			}
			text, render = string(b), f.Render
		}
		text, err := f.edited(text)
		if err != nil {
			return nil, fmt.Errorf("service %q: file %s: %w", s.Name, f.Path, err)
		}
		if render {
			t, err := template.New(f.Path).Option("missingkey=error").Parse(text)
			if err != nil {
				return nil, fmt.Errorf("service %q: file %s: %w", s.Name, f.Path, err)
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, data); err != nil {
				return nil, fmt.Errorf("service %q: render file %s: %w", s.Name, f.Path, err)
			}
			content = buf.Bytes()
		} else {
			content = []byte(text)
		}
		mode := int64(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		rf := renderedFile{Path: f.Path, Mode: mode, Data: content}
		if f.Owner != "" {
			if rf.UID, rf.GID, err = parseOwner(f.Owner); err != nil {
				return nil, fmt.Errorf("service %q: file %s: %w", s.Name, f.Path, err)
			}
		}
		out = append(out, rf)
	}
	return out, nil
}

// renderArgs renders each argument of a control command as a template.
func renderArgs(args []string, data any) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		t, err := template.New("arg").Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return nil, err
		}
		out[i] = buf.String()
	}
	return out, nil
}

// linkInfos returns the template view of the links.
func linkInfos(d *Descriptor) map[string]LinkInfo {
	m := map[string]LinkInfo{}
	for _, l := range d.Links {
		m[l.Name] = LinkInfo{Listen: l.Listen, Upstream: l.Upstream}
	}
	return m
}
