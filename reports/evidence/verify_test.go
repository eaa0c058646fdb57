package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))

func testPub() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// problemOf returns the first problem at path, and whether there is one.
func problemOf(r *Report, path string) (Problem, bool) {
	for _, p := range r.Problems {
		if p.Path == path {
			return p, true
		}
	}
	return Problem{}, false
}

func TestStatementForm(t *testing.T) {
	got := string(Statement("run-1", strings.Repeat("ab", 32)))
	want := "mailchaos-manifest v1\nrun run-1\nsha256 " + strings.Repeat("ab", 32) + "\n"
	if got != want {
		t.Fatalf("statement\n%q\nwant\n%q", got, want)
	}
}

// A signature verifies only for the run and manifest it was made for: not
// with another key, not moved from another run, not from a folder with the
// same artifacts under another run id.
func TestSignatureBindsRunAndKey(t *testing.T) {
	parent := t.TempDir()
	a := sampleRun(t, parent, "run-a")
	seal(t, a, testKey)
	b := sampleRun(t, parent, "run-b")
	seal(t, b, testKey)
	// run-c has exactly run-a's artifacts: only the run id differs.
	c := filepath.Join(t.TempDir(), "run-c")
	if err := os.CopyFS(c, os.DirFS(a)); err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(nil)

	ok := mustVerify(t, a, VerifyOptions{PublicKey: testPub()})
	if !ok.OK() || !ok.SigValid || ok.RunID != "run-a" {
		t.Fatalf("the signed run: ok %v, valid %v, run %q: %v", ok.OK(), ok.SigValid, ok.RunID, ok.Err())
	}
	cases := []struct {
		name, dir string
		sig       func(t *testing.T, dir string)
		why       string
	}{
		{"signature of another run", copyDir(t, a), func(t *testing.T, dir string) { copySig(t, b, dir) }, "of run run-a"},
		{"same artifacts, another run id", c, func(*testing.T, string) {}, "of run run-c"},
		{"another key", copyDir(t, a), func(t *testing.T, dir string) {
			if err := Sign(dir, other); err != nil {
				t.Fatal(err)
			}
		}, "not a signature by key " + Fingerprint(testPub())},
		{"truncated", copyDir(t, a), func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, SignatureName), []byte("short"), 0o644)
		}, "5 bytes"},
	}
	// run-c's folder against run-a's bundle: the bundle is of another run.
	r := mustVerify(t, c, VerifyOptions{})
	if p, found := problemOf(r, BundleName); !found || !strings.Contains(p.Detail, "under run-a/") {
		t.Fatalf("run-c holding run-a's bundle: %v", r.Err())
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.sig(t, tc.dir)
			// Re-bundled, as a forger would, so folder and bundle agree.
			if err := WriteBundle(tc.dir); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{tc.dir, filepath.Join(tc.dir, BundleName)} {
				r := mustVerify(t, p, VerifyOptions{PublicKey: testPub()})
				q, found := problemOf(r, SignatureName)
				if r.OK() || r.SigValid || !found || q.Kind != BadSig || !strings.Contains(q.Detail, tc.why) {
					t.Fatalf("%s: want %s: %s naming %q; got %v", p, SignatureName, BadSig, tc.why, r.Err())
				}
			}
		})
	}
}

func copySig(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, SignatureName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(to, SignatureName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Without a key, a signature is reported present and unchecked: never
// valid, whether it is good or garbage.
func TestSignatureWithoutKey(t *testing.T) {
	dir := sampleRun(t, t.TempDir(), "run-1")
	seal(t, dir, testKey)
	garbage := copyDir(t, dir)
	os.WriteFile(filepath.Join(garbage, SignatureName), bytes.Repeat([]byte{1}, 64), 0o644)
	if err := WriteBundle(garbage); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, garbage} {
		r := mustVerify(t, d, VerifyOptions{})
		if !r.OK() || !r.Signed || r.SigValid {
			t.Fatalf("%s: ok %v, signed %v, valid %v: want ok, signed, not valid: %v", d, r.OK(), r.Signed, r.SigValid, r.Err())
		}
		if !strings.Contains(strings.Join(r.Checked, "\n"), "NOT checked") {
			t.Fatalf("checked lines do not say the signature is unchecked: %v", r.Checked)
		}
	}
}

// out/latest, a symlink to the run folder, is verified as the folder it
// points at: extra files are found and the run id is the folder's.
func TestVerifySymlinkedFolder(t *testing.T) {
	out := t.TempDir()
	dir := sampleRun(t, out, "run-7")
	seal(t, dir, testKey)
	latest := filepath.Join(out, "latest")
	if err := os.Symlink("run-7", latest); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, latest, VerifyOptions{PublicKey: testPub()})
	if !r.OK() || r.RunID != "run-7" || r.Resolved != dir || r.Files != 10 {
		t.Fatalf("clean: ok %v run %q resolved %q files %d: %v", r.OK(), r.RunID, r.Resolved, r.Files, r.Err())
	}
	os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("x"), 0o644)
	for _, p := range []string{latest, latest + "/"} {
		r = mustVerify(t, p, VerifyOptions{})
		if q, found := problemOf(r, "extra.txt"); !found || q.Kind != Extra {
			t.Fatalf("%s: extra file not reported: %v", p, r.Err())
		}
	}
}

// A leftover of an interrupted write is reported, never skipped; writing a
// manifest refuses it, and RemoveStale clears it.
func TestLeftoversReported(t *testing.T) {
	src := sampleRun(t, t.TempDir(), "run-1")
	seal(t, src, nil)
	for _, name := range []string{BundleName + ".tmp123456", "." + ManifestName + ".tmp99"} {
		dir := copyDir(t, src)
		os.WriteFile(filepath.Join(dir, name), []byte("half"), 0o644)
		r := mustVerify(t, dir, VerifyOptions{})
		if p, found := problemOf(r, name); !found || p.Kind != Extra || !strings.Contains(p.Detail, "interrupted") {
			t.Errorf("%s: %v", name, r.Err())
		}
		if _, err := WriteManifest(dir); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("WriteManifest with %s: %v", name, err)
		}
		if err := RemoveStale(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("RemoveStale left %s: %v", name, err)
		}
		seal(t, dir, nil)
		if r := mustVerify(t, dir, VerifyOptions{}); !r.OK() {
			t.Errorf("resealed: %v", r.Err())
		}
	}
}

// tarEntry is one entry of a crafted bundle; size, when set, is what the
// header claims instead of len(body).
type tarEntry struct {
	name string
	body string
	size int64
	typ  byte
}

// craftBundle writes a gzip'd tar of entries; it stops writing data after
// a header that claims more than its body (the header alone is the test).
func craftBundle(t *testing.T, p string, entries ...tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if e.typ != 0 {
			h.Typeflag, h.Size = e.typ, 0
			if e.typ == tar.TypeSymlink {
				h.Linkname = "elsewhere"
			}
		}
		if e.size > 0 {
			h.Size = e.size
			tw.WriteHeader(h)
			break
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// manifestOf formats a manifest for crafted bundles.
func manifestOf(t *testing.T, files map[string]string) string {
	t.Helper()
	var es []Entry
	for name, body := range files {
		es = append(es, Entry{Path: name, SHA256: sha256hex(body)})
	}
	var b bytes.Buffer
	if err := FormatManifest(&b, es); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sha256hex(s string) string {
	h := newHasher()
	h.Write([]byte(s))
	return h.hex()
}

// Hostile bundles: each is refused or reported, naming why, within limits.
func TestCraftedBundles(t *testing.T) {
	m := manifestOf(t, map[string]string{"a.txt": "a\n"})
	man := tarEntry{name: "r/" + ManifestName, body: m}
	a := tarEntry{name: "r/a.txt", body: "a\n"}
	small := Limits{Entries: 10, TotalBytes: 64 << 10, EntryBytes: 1 << 10, Problems: 3}
	many := []tarEntry{man, a}
	for i := range 20 {
		many = append(many, tarEntry{name: fmt.Sprintf("r/x%d", i), body: "x"})
	}
	cases := []struct {
		name    string
		entries []tarEntry
		lim     Limits
		path    string // the problem's path
		kind    Kind
		detail  string
	}{
		{"clean", []tarEntry{man, a}, Limits{}, "", "", ""},
		{"manifest not first", []tarEntry{a, man}, Limits{}, "b.tar.gz", Unreadable, "the first file is r/a.txt"},
		{"no manifest", nil, Limits{}, ManifestName, Missing, "not in the bundle"},
		{"climbs out", []tarEntry{man, a, {name: "r/../../etc/x", body: "x"}}, Limits{}, "r/../../etc/x", Extra, "not a plain path"},
		{"absolute", []tarEntry{man, a, {name: "/etc/x", body: "x"}}, Limits{}, "/etc/x", Extra, "not a plain path"},
		{"second top folder", []tarEntry{man, a, {name: "s/b", body: "x"}}, Limits{}, "s/b", Extra, "outside r/"},
		{"twice", []tarEntry{man, a, {name: "r/a.txt", body: "evil\n"}}, Limits{}, "a.txt", Extra, "second copy"},
		{"symlink listed", []tarEntry{man, {name: "r/a.txt", typ: tar.TypeSymlink}}, Limits{}, "a.txt", Altered, "not a regular file"},
		{"long name", []tarEntry{man, a, {name: "r/" + strings.Repeat("n", 5000), body: "x"}}, Limits{}, "r/" + strings.Repeat("n", 62) + "...", Extra, "longer than 4096"},
		{"too many entries", many, small, "b.tar.gz", Unreadable, "more than 10 entries"},
		{"entry claims too much", []tarEntry{man, a, {name: "r/big", size: 17 << 30}}, Limits{}, "b.tar.gz", Unreadable, "more than 17179869184, the limit for one file"},
		{"bomb", []tarEntry{man, a, {name: "r/zeros", body: strings.Repeat("\x00", 100<<10)}}, small, "b.tar.gz", Unreadable, "more than 1024, the limit for one file"},
		{"stream past total", []tarEntry{man, a, {name: "r/z1", body: strings.Repeat("\x00", 1000)}, {name: "r/z2", body: strings.Repeat("\x00", 1000)}},
			Limits{TotalBytes: 4 << 10}, "b.tar.gz", Unreadable, "more than 4096 bytes uncompressed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b.tar.gz")
			craftBundle(t, p, tc.entries...)
			r := mustVerify(t, p, VerifyOptions{Limits: tc.lim})
			if tc.path == "" {
				if !r.OK() || r.RunID != "r" {
					t.Fatalf("%v (run %q)", r.Err(), r.RunID)
				}
				return
			}
			q, found := problemOf(r, tc.path)
			if !found || q.Kind != tc.kind || !strings.Contains(q.Detail, tc.detail) {
				t.Fatalf("want %s: %s (...%s...); got %v", tc.path, tc.kind, tc.detail, r.Err())
			}
		})
	}
	// The stream bound holds with a manifest that is itself too long.
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	var long strings.Builder
	for i := range 100 {
		fmt.Fprintf(&long, "%s  f%d\n", sha256hex(""), i)
	}
	craftBundle(t, p, tarEntry{name: "r/" + ManifestName, body: long.String()})
	r := mustVerify(t, p, VerifyOptions{Limits: Limits{Entries: 50}})
	if q, found := problemOf(r, ManifestName); !found || !strings.Contains(q.Detail, "more than 50 files listed") {
		t.Fatalf("long manifest: %v", r.Err())
	}
}

// Problems past the limit are counted, not listed.
func TestProblemsCapped(t *testing.T) {
	dir := sampleRun(t, t.TempDir(), "run-1")
	seal(t, dir, nil)
	for i := range 30 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("x%02d", i)), nil, 0o644)
	}
	r := mustVerify(t, dir, VerifyOptions{Limits: Limits{Problems: 5}})
	if len(r.Problems) != 5 || r.Unlisted != 25 || !strings.Contains(r.Err().Error(), "30 problem(s)") ||
		!strings.Contains(r.Err().Error(), "25 more") {
		t.Fatalf("%d listed, %d unlisted: %v", len(r.Problems), r.Unlisted, r.Err())
	}
	r = mustVerify(t, dir, VerifyOptions{Limits: Limits{Entries: 20}})
	if q, found := problemOf(r, "."); !found || !strings.Contains(q.Detail, "more than 20 files") {
		t.Fatalf("folder past the entry limit: %v", r.Err())
	}
}

// Verify stops when its context is done, saying it did not finish.
func TestVerifyHonoursContext(t *testing.T) {
	dir := sampleRun(t, t.TempDir(), "run-1")
	seal(t, dir, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range []string{dir, filepath.Join(dir, BundleName)} {
		if r, err := Verify(ctx, p, VerifyOptions{}); err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("%s: cancelled verify returned %v, %v", p, r, err)
		}
	}
}

func TestWriteKeyPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	priv, pub, k, err := WriteKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(priv)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("key folder mode %v, want 0700", st.Mode().Perm())
	}
	sk, err := LoadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := LoadPublicKey(pub)
	if err != nil || !pk.Equal(k) || !pk.Equal(sk.Public()) {
		t.Fatalf("the files are not a pair: %v", err)
	}
	if _, _, _, err := WriteKeyPair(dir); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second WriteKeyPair into the same folder: %v", err)
	}
	run := sampleRun(t, t.TempDir(), "run-1")
	seal(t, run, sk)
	if r := mustVerify(t, run, VerifyOptions{PublicKey: pk}); !r.OK() {
		t.Fatal(r.Err())
	}
	auditorChecksSignature(t, run, pub, true)
	// The same folder under another name is another run: refused.
	moved := filepath.Join(filepath.Dir(run), "run-2")
	if err := os.Rename(run, moved); err != nil {
		t.Fatal(err)
	}
	auditorChecksSignature(t, moved, pub, false)
	if r := mustVerify(t, moved, VerifyOptions{PublicKey: pk}); r.OK() {
		t.Fatal("a renamed run folder verifies with its old signature")
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		if out, err := exec.Command("openssl", "pkey", "-in", priv, "-noout").CombinedOutput(); err != nil {
			t.Fatalf("openssl cannot read the private key: %v\n%s", err, out)
		}
	}
}

// A manifest line with a carriage return is refused with its line number,
// whichever way it ends; the writer never writes one.
func TestManifestCarriageReturn(t *testing.T) {
	h := sha256hex("")
	for _, in := range []string{h + "  a\n" + h + "  b\r\n", h + "  a\n" + h + "  b\r\r\n"} {
		_, err := ParseManifest(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), "line 2: ends in a carriage return") {
			t.Errorf("%q: %v", in, err)
		}
	}
	if err := FormatManifest(io.Discard, []Entry{{Path: "b\r", SHA256: h}}); err == nil {
		t.Error("FormatManifest wrote a name ending in \\r")
	}
}

// verifyWithin verifies p and fails the test if that takes more than a
// few seconds: a named pipe opened for reading waits for a writer.
func verifyWithin(t *testing.T, p string, opts VerifyOptions) *Report {
	t.Helper()
	type result struct {
		r   *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := Verify(context.Background(), p, opts)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.r
	case <-time.After(10 * time.Second):
		t.Fatalf("verify %s: still running after 10 s", p)
		return nil
	}
}

// Hostile folders: symlinks that lead out of the run folder, named pipes
// and devices are reported without being followed or read, and verify
// ends; a folder past the entry or path limit stops with the limit named.
func TestVerifyHostileFolder(t *testing.T) {
	src := sampleRun(t, t.TempDir(), "run-1")
	seal(t, src, testKey)
	outside := t.TempDir()
	// A copy of logs/ outside the folder, the same bytes: a symlink to it
	// must not make the listed files verify.
	if err := os.CopyFS(filepath.Join(outside, "logs"), os.DirFS(filepath.Join(src, "logs"))); err != nil {
		t.Fatal(err)
	}
	junit, _ := os.ReadFile(filepath.Join(src, "junit.xml"))
	os.WriteFile(filepath.Join(outside, "junit.xml"), junit, 0o644)

	replace := func(rel string, with func(p string) error) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			if err := with(p); err != nil {
				t.Skipf("%s: %v", rel, err)
			}
		}
	}
	fifo := func(p string) error { return syscall.Mkfifo(p, 0o644) }
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		path   string // a problem must name it, with detail
		detail string
		lim    Limits
	}{
		{"listed file a named pipe", replace("junit.xml", fifo), "junit.xml", "named pipe", Limits{}},
		{"manifest a named pipe", replace(ManifestName, fifo), ManifestName, "named pipe", Limits{}},
		{"signature a named pipe", replace(SignatureName, fifo), SignatureName, "named pipe", Limits{}},
		{"bundle a named pipe", replace(BundleName, fifo), BundleName, "named pipe", Limits{}},
		{"bundle sum a named pipe", replace(BundleSumName, fifo), BundleSumName, "named pipe", Limits{}},
		{"listed file a symlink out, same bytes", replace("junit.xml", func(p string) error {
			return os.Symlink(filepath.Join(outside, "junit.xml"), p)
		}), "junit.xml", "", Limits{}},
		{"listed file a symlink to a device", replace("junit.xml", func(p string) error {
			return os.Symlink("/dev/zero", p)
		}), "junit.xml", "", Limits{}},
		{"folder a symlink out, same bytes", replace("logs", func(p string) error {
			return os.Symlink(filepath.Join(outside, "logs"), p)
		}), "logs/edge.log", "", Limits{}},
		{"relative symlink climbing out", replace("logs", func(p string) error {
			return os.Symlink("../../"+filepath.Base(outside)+"/logs", p)
		}), "logs/edge.log", "", Limits{}},
		{"bundle sum in binary mode", func(t *testing.T, dir string) {
			p := filepath.Join(dir, BundleSumName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("  "), []byte(" *"), 1), 0o644)
		}, BundleSumName, "want one line", Limits{}},
		{"bundle sum with a carriage return", func(t *testing.T, dir string) {
			p := filepath.Join(dir, BundleSumName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("\n"), []byte("\r\n"), 1), 0o644)
		}, BundleSumName, "want one line", Limits{}},
		{"empty folders past the entry limit", func(t *testing.T, dir string) {
			for i := range 40 {
				os.Mkdir(filepath.Join(dir, fmt.Sprintf("d%02d", i)), 0o755)
			}
		}, ".", "more than 30 files and folders", Limits{Entries: 30}},
		{"nested past the path limit", func(t *testing.T, dir string) {
			p := dir
			for range 20 {
				p = filepath.Join(p, strings.Repeat("n", 250))
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Skip(err)
				}
			}
		}, ".", "longer than 4096 bytes", Limits{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			tc.tamper(t, dir)
			r := verifyWithin(t, dir, VerifyOptions{PublicKey: testPub(), Limits: tc.lim})
			if r.OK() || !slices.ContainsFunc(r.Problems, func(q Problem) bool {
				return q.Path == tc.path && strings.Contains(q.Detail, tc.detail)
			}) {
				t.Fatalf("want a problem with %s (...%s...); got %v", tc.path, tc.detail, r.Err())
			}
		})
	}
	// The bundle given by path as a named pipe is refused, not waited on.
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip(err)
	}
	r := verifyWithin(t, p, VerifyOptions{})
	if q, found := problemOf(r, "b.tar.gz"); !found || !strings.Contains(q.Detail, "named pipe") {
		t.Fatalf("named pipe given as the bundle: %v", r.Err())
	}
}
