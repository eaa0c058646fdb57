// Package testsrv runs in-process mail servers on 127.0.0.1:0 for the
// loadgen tests: a go-smtp server that delivers into a go-imap in-memory
// server, servers that misbehave on purpose (421 greeting, 451 on DATA, a cut
// after the final ".", silence, corrupted storage), and a throwaway CA.
// It is test support only: no production code imports it.
package testsrv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// CA is a throwaway certificate authority with one server certificate for
// 127.0.0.1 and localhost.
type CA struct {
	CertPEM []byte      // the CA certificate, for clients to trust
	Server  *tls.Config // server side, with the leaf certificate
}

// NewCA makes a CA and a server certificate.
func NewCA(t testing.TB) *CA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailchaos test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Server:  &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
	}
}

// ClientTLS returns a client configuration trusting the CA.
func (ca *CA) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	return &tls.Config{RootCAs: pool}
}

// Mailstore is where the SMTP server delivers: an in-memory IMAP server.
type Mailstore struct {
	Mem *imapmemserver.Server

	mu    sync.Mutex
	users map[string]*imapmemserver.User
	// Corrupt, if set, rewrites a message before it is stored.
	Corrupt func(data []byte) []byte
	// beforeList, if set, runs before the server answers a FETCH or SEARCH:
	// a test makes a message arrive in the middle of a client's look.
	beforeList func()
}

// OnList sets a function run before every FETCH or SEARCH is answered
// (nil: none).
func (ms *Mailstore) OnList(f func()) {
	ms.mu.Lock()
	ms.beforeList = f
	ms.mu.Unlock()
}

func (ms *Mailstore) runBeforeList() {
	ms.mu.Lock()
	f := ms.beforeList
	ms.mu.Unlock()
	if f != nil {
		f()
	}
}

// hookedSession is a memory-server session that runs the mailstore's
// listing hook.
type hookedSession struct {
	imapserver.SessionIMAP4rev2
	ms *Mailstore
}

func (s hookedSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	s.ms.runBeforeList()
	return s.SessionIMAP4rev2.Fetch(w, numSet, options)
}

func (s hookedSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.ms.runBeforeList()
	return s.SessionIMAP4rev2.Search(kind, criteria, options)
}

// NewMailstore creates the users (address -> password), each with an INBOX.
func NewMailstore(users map[string]string) *Mailstore {
	ms := &Mailstore{Mem: imapmemserver.New(), users: map[string]*imapmemserver.User{}}
	for addr, pass := range users {
		u := imapmemserver.NewUser(addr, pass)
		if err := u.Create("INBOX", nil); err != nil {
			panic(err)
		}
		ms.Mem.AddUser(u)
		ms.users[addr] = u
	}
	return ms
}

type literal struct {
	*bytes.Reader
}

// Deliver appends data to rcpt's INBOX.
func (ms *Mailstore) Deliver(rcpt string, data []byte) error {
	ms.mu.Lock()
	u := ms.users[rcpt]
	corrupt := ms.Corrupt
	ms.mu.Unlock()
	if u == nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	if corrupt != nil {
		data = corrupt(bytes.Clone(data))
	}
	_, err := u.Append("INBOX", literal{bytes.NewReader(data)}, &imap.AppendOptions{})
	return err
}

// SetCorrupt sets the corruption function (nil: store faithfully).
func (ms *Mailstore) SetCorrupt(f func([]byte) []byte) {
	ms.mu.Lock()
	ms.Corrupt = f
	ms.mu.Unlock()
}

// StartIMAP serves the mailstore over IMAP on 127.0.0.1:0 (STARTTLS if
// tlsConfig is set) and returns its address.
func (ms *Mailstore) StartIMAP(t testing.TB, tlsConfig *tls.Config) string {
	t.Helper()
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return hookedSession{SessionIMAP4rev2: ms.Mem.NewSession().(imapserver.SessionIMAP4rev2), ms: ms}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		TLSConfig:    tlsConfig,
		InsecureAuth: true,
		Logger:       quietLogger{},
	})
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
func (quietLogger) Println(...any)        {}

func listen(t testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// SMTPOptions shapes the behaviour of an in-process SMTP server.
type SMTPOptions struct {
	TLS   *tls.Config       // enables STARTTLS
	Users map[string]string // enables AUTH PLAIN with these logins
	Store *Mailstore        // deliver accepted messages here (nil: only count them)
	// Data, if set, is called for the n-th DATA (1-based) before storing;
	// a non-nil error is the reply (e.g. a 451 *smtp.SMTPError).
	Data func(n int) error
	// CutAfterDot, if set and true for the n-th DATA, stores the message and
	// then closes the connection instead of replying.
	CutAfterDot func(n int) bool
	// HangAfterDot, if set and true for the n-th DATA, stores nothing and
	// never replies (until the server is closed).
	HangAfterDot func(n int) bool
}

// SMTP is a running in-process SMTP server.
type SMTP struct {
	Addr string

	o     SMTPOptions
	mu    sync.Mutex
	n     int
	ids   map[string]int    // X-Mailchaos-Id -> deliveries
	raw   map[string][]byte // X-Mailchaos-Id -> last data
	hang  chan struct{}
	srv   *smtp.Server
	conns int
}

// StartSMTP starts an SMTP server on 127.0.0.1:0.
func StartSMTP(t testing.TB, o SMTPOptions) *SMTP {
	t.Helper()
	s := &SMTP{o: o, ids: map[string]int{}, raw: map[string][]byte{}, hang: make(chan struct{})}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.TLSConfig = o.TLS
	srv.AllowInsecureAuth = o.TLS == nil
	srv.MaxMessageBytes = 64 << 20
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.ErrorLog = quietLogger{}
	s.srv = srv
	ln := listen(t)
	s.Addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(s.hang)
		srv.Close()
	})
	return s
}

// Delivered returns how many times each X-Mailchaos-Id was accepted or
// stored.
func (s *SMTP) Delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		out[k] = v
	}
	return out
}

// Raw returns the last data received under an X-Mailchaos-Id.
func (s *SMTP) Raw(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw[id]
}

// Conns returns the number of sessions opened.
func (s *SMTP) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// NewSession implements smtp.Backend.
func (s *SMTP) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	return &session{s: s, c: c}, nil
}

type session struct {
	s     *SMTP
	c     *smtp.Conn
	rcpts []string
	authd bool
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.o.Users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if p, ok := ss.s.o.Users[username]; !ok || p != password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		ss.authd = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.o.Users != nil && !ss.authd {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if s.o.Data != nil {
		if err := s.o.Data(n); err != nil {
			return err
		}
	}
	if s.o.HangAfterDot != nil && s.o.HangAfterDot(n) {
		<-s.hang
		return errors.New("server closed")
	}
	id := headerValue(data, "X-Mailchaos-Id")
	s.mu.Lock()
	s.ids[id]++
	s.raw[id] = data
	s.mu.Unlock()
	if s.o.Store != nil {
		for _, r := range ss.rcpts {
			if err := s.o.Store.Deliver(r, data); err != nil {
				return err
			}
		}
	}
	if s.o.CutAfterDot != nil && s.o.CutAfterDot(n) {
		ss.c.Conn().Close()
	}
	return nil
}

func (ss *session) Reset()        { ss.rcpts = nil }
func (ss *session) Logout() error { return nil }

func headerValue(data []byte, name string) string {
	hdr := data
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		hdr = data[:i]
	}
	for _, l := range strings.Split(string(hdr), "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// StartRaw serves every connection with handle on 127.0.0.1:0 and returns
// the address: for servers that misbehave below the protocol library.
func StartRaw(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln := listen(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
