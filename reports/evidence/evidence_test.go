package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleRun writes a run folder like the one reports/render produces.
func sampleRun(t testing.TB, parent, id string) string {
	t.Helper()
	dir := filepath.Join(parent, id)
	files := map[string]string{
		"history.jsonl":    `{"type":"header","version":1,"run_id":"` + id + `","start":0}` + "\n",
		"junit.xml":        "<testsuites></testsuites>\n",
		"verdict.json":     `{"status":"success"}` + "\n",
		"index.html":       "<!doctype html><title>run</title>\n",
		"logs/edge.log":    "edge started\n",
		"logs/store-a.log": "dovecot started\n",
		"logs/empty.log":   "",
		"steady/notes.txt": "a file in a sub-folder with a space\n",
		"with space.txt":   "spaces are fine for sha256sum\n",
		"unicode-é.txt":    "non-ASCII names are fine too\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func seal(t testing.TB, dir string, key ed25519.PrivateKey) {
	t.Helper()
	if _, err := WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if err := Sign(dir, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteBundle(dir); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t *testing.T, p string, opts VerifyOptions) *Report {
	t.Helper()
	r, err := Verify(context.Background(), p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestManifestReadBySha256sum(t *testing.T) {
	sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("sha256sum (GNU coreutils) not installed")
	}
	dir := sampleRun(t, t.TempDir(), "20260101-000000-abcd")
	seal(t, dir, nil)
	for _, m := range []string{ManifestName, BundleSumName} {
		cmd := exec.Command(sum, "--strict", "-c", m)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sha256sum -c %s: %v\n%s", m, err, out)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	for _, want := range []string{"  history.jsonl\n", "  logs/edge.log\n", "  with space.txt\n", "  unicode-é.txt\n"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("manifest lacks %q:\n%s", want, b)
		}
	}
	for _, not := range []string{ManifestName, BundleName, SignatureName} {
		if bytes.Contains(b, []byte("  "+not+"\n")) {
			t.Errorf("manifest lists %s", not)
		}
	}

	// An auditor unpacks the bundle anywhere and checks it with sha256sum.
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("tar not installed")
	}
	x := t.TempDir()
	if out, err := exec.Command(tarBin, "-xzf", filepath.Join(dir, BundleName), "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	cmd := exec.Command(sum, "--strict", "-c", ManifestName)
	cmd.Dir = filepath.Join(x, "20260101-000000-abcd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c in the unpacked bundle: %v\n%s", err, out)
	}
	if r := mustVerify(t, cmd.Dir, VerifyOptions{}); !r.OK() {
		t.Fatalf("unpacked bundle: %v", r.Err())
	}
}

func TestVerifyClean(t *testing.T) {
	dir := sampleRun(t, t.TempDir(), "run-1")
	seal(t, dir, nil)
	for _, p := range []string{dir, filepath.Join(dir, BundleName)} {
		r := mustVerify(t, p, VerifyOptions{})
		if !r.OK() {
			t.Errorf("%s: %v", p, r.Err())
		}
		if r.Files != 10 {
			t.Errorf("%s: %d files, want 10", p, r.Files)
		}
	}
}

func TestBundleDeterministic(t *testing.T) {
	a := sampleRun(t, t.TempDir(), "run-1")
	b := sampleRun(t, t.TempDir(), "run-1")
	// Different mtimes and modes must not change the bundle.
	old := time.Date(2011, 3, 4, 5, 6, 7, 0, time.UTC)
	os.Chtimes(filepath.Join(b, "junit.xml"), old, old)
	os.Chmod(filepath.Join(b, "index.html"), 0o600)
	seal(t, a, nil)
	seal(t, b, nil)
	ba, _ := os.ReadFile(filepath.Join(a, BundleName))
	bb, _ := os.ReadFile(filepath.Join(b, BundleName))
	if !bytes.Equal(ba, bb) {
		t.Fatal("two bundles of the same artifacts differ")
	}
	// Sealing again gives the same bytes (the old bundle is not an artifact).
	seal(t, a, nil)
	ba2, _ := os.ReadFile(filepath.Join(a, BundleName))
	if !bytes.Equal(ba, ba2) {
		t.Fatal("re-sealing changed the bundle")
	}
}

// copyDir copies a run folder so each case alters its own copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// named reports whether some problem names file, by path or in its detail.
func named(r *Report, file string) bool {
	for _, p := range r.Problems {
		if p.Path == file || strings.HasSuffix(p.Path, ": "+file) || strings.Contains(p.Detail, file) {
			return true
		}
	}
	return false
}

func TestAlterOneByteOfEveryArtifact(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	src := sampleRun(t, t.TempDir(), "run-1")
	seal(t, src, priv)

	var files []string
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(src, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(files) != 14 {
		t.Fatalf("%d files in the sealed folder, want 14: %v", len(files), files)
	}
	for _, rel := range files {
		size := fileSize(t, filepath.Join(src, rel))
		// Flip the first, middle and last byte; an empty file gets one byte.
		offsets := []int64{0, size / 2, size - 1}
		if size == 0 {
			offsets = []int64{-1}
		}
		if rel == BundleName {
			// Also the gzip header's MTIME and OS bytes, outside the CRC.
			offsets = append(offsets, 4, 9)
		}
		for _, off := range offsets {
			dir := copyDir(t, src)
			p := filepath.Join(dir, rel)
			alter(t, p, off)
			for _, opts := range []VerifyOptions{{}, {PublicKey: pub}} {
				r := mustVerify(t, dir, opts)
				if r.OK() {
					t.Errorf("%s altered at %d: verify passed", rel, off)
					continue
				}
				if !named(r, rel) {
					t.Errorf("%s altered at %d: problems do not name it: %v", rel, off, r.Err())
				}
			}
			// The bundle alone, if it was the file altered.
			if rel == BundleName {
				if r := mustVerify(t, p, VerifyOptions{}); r.OK() && off != 4 && off != 9 {
					t.Errorf("bundle altered at %d verifies on its own", off)
				}
			}
		}
	}
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// alter flips one byte at off, or appends one byte when off is -1.
func alter(t *testing.T, p string, off int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		b = append(b, 'x')
	} else {
		b[off] ^= 0x01
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMissingAndExtra(t *testing.T) {
	src := sampleRun(t, t.TempDir(), "run-1")
	seal(t, src, nil)
	dir := copyDir(t, src)
	os.Remove(filepath.Join(dir, "logs/edge.log"))
	os.WriteFile(filepath.Join(dir, "logs/intruder.log"), []byte("x"), 0o644)
	os.Symlink("junit.xml", filepath.Join(dir, "link.xml"))
	r := mustVerify(t, dir, VerifyOptions{})
	want := map[string]Kind{"logs/edge.log": Missing, "logs/intruder.log": Extra, "link.xml": Extra}
	for _, p := range r.Problems {
		if k, ok := want[p.Path]; ok && k == p.Kind {
			delete(want, p.Path)
		}
	}
	if len(want) > 0 {
		t.Errorf("not reported: %v; got %v", want, r.Err())
	}
	for _, line := range []string{"logs/edge.log: missing", "logs/intruder.log: extra"} {
		if !strings.Contains(r.Err().Error(), line) {
			t.Errorf("error lacks %q:\n%v", line, r.Err())
		}
	}
}

func TestSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	dir := sampleRun(t, t.TempDir(), "run-1")
	seal(t, dir, priv)

	if r := mustVerify(t, dir, VerifyOptions{PublicKey: pub}); !r.OK() || !r.SigValid {
		t.Fatalf("valid signature: ok=%v sigvalid=%v %v", r.OK(), r.SigValid, r.Err())
	}
	if r := mustVerify(t, filepath.Join(dir, BundleName), VerifyOptions{PublicKey: pub}); !r.OK() || !r.SigValid {
		t.Fatalf("valid signature in bundle: %v", r.Err())
	}
	r := mustVerify(t, dir, VerifyOptions{PublicKey: otherPub})
	if r.OK() || !named(r, SignatureName) {
		t.Fatalf("wrong key: %v", r.Err())
	}
	// Unsigned folder with a key demanded.
	d2 := sampleRun(t, t.TempDir(), "run-2")
	seal(t, d2, nil)
	r = mustVerify(t, d2, VerifyOptions{PublicKey: pub})
	if r.OK() || !named(r, SignatureName) {
		t.Fatalf("unsigned folder with a key: %v", r.Err())
	}
}

func TestKeyFormats(t *testing.T) {
	dir := t.TempDir()
	run := func(name string, args ...string) bool {
		if _, err := exec.LookPath(name); err != nil {
			t.Logf("%s not installed; skipping its key format", name)
			return false
		}
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return true
	}
	type pair struct{ priv, pub string }
	var pairs []pair
	if run("openssl", "genpkey", "-algorithm", "ed25519", "-out", "key.pem") &&
		run("openssl", "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem") {
		pairs = append(pairs, pair{"key.pem", "pub.pem"})
	}
	if run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", "id_ed25519") {
		pairs = append(pairs, pair{"id_ed25519", "id_ed25519.pub"})
	}
	seed := bytes.Repeat([]byte{1}, 32)
	k := ed25519.NewKeyFromSeed(seed)
	os.WriteFile(filepath.Join(dir, "seed.hex"), []byte("0101010101010101010101010101010101010101010101010101010101010101\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "pub.hex"), []byte(hex.EncodeToString(k.Public().(ed25519.PublicKey))+"\n"), 0o644)
	pairs = append(pairs, pair{"seed.hex", "pub.hex"})

	for _, p := range pairs {
		priv, err := LoadPrivateKey(filepath.Join(dir, p.priv))
		if err != nil {
			t.Fatal(err)
		}
		pub, err := LoadPublicKey(filepath.Join(dir, p.pub))
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(priv.Public()) {
			t.Fatalf("%s and %s are not a pair", p.priv, p.pub)
		}
		run := sampleRun(t, t.TempDir(), "run-1")
		seal(t, run, priv)
		if r := mustVerify(t, run, VerifyOptions{PublicKey: pub}); !r.OK() {
			t.Fatalf("%s: %v", p.priv, r.Err())
		}
		if p.pub == "pub.pem" {
			auditorChecksSignature(t, run, filepath.Join(dir, "pub.pem"), true)
		}
	}
	if _, err := ParsePrivateKey([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")); err == nil {
		t.Error("RSA PEM accepted as an ed25519 key")
	}
}

func TestParseManifestRejects(t *testing.T) {
	h := strings.Repeat("a", 64)
	for _, bad := range []string{
		"nothex  file\n",
		h + " file\n",
		h + "  /etc/passwd\n",
		h + "  ../up\n",
		h + "  a/../../up\n",
		strings.ToUpper(h) + "  file\n",
		h + "  f\n" + h + "  f\n",
		h + "  f\r\n",   // sha256sum reads "f"
		h + "  f\r\r\n", // sha256sum reads "f\r"
		h + "  f\r",
		h + "  f\n\n" + h + "  g\n",
		h + "  f\n" + h + "  g", // cut short
		"\n",
	} {
		if _, err := ParseManifest(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if es, err := ParseManifest(strings.NewReader(h + " *bin.dat\n" + h + "  t x\n")); err != nil || len(es) != 2 || es[0].Path != "bin.dat" || es[1].Path != "t x" {
		t.Errorf("binary-mode and space names: %v %v", es, err)
	}
}

// readmeRunID and readmeStatement are what the README's copy of
// CheckCommands is written with.
const (
	readmeRunID     = `"$(basename "$PWD")"`
	readmeStatement = "/tmp/statement"
)

// The README shows an auditor CheckCommands as the tests run them.
func TestREADMEShowsCheckCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := CheckCommands(readmeRunID, "sign-pub.pem", readmeStatement); !strings.Contains(string(b), "\n"+want+"\n") {
		t.Fatalf("README does not show the signature check as\n%s", want)
	}
}

// auditorChecksSignature runs CheckCommands, as the README shows them, in
// run: the signature must verify with nothing from mailchaos when good is
// set, and must not otherwise.
func auditorChecksSignature(t *testing.T, run, pub string, good bool) {
	t.Helper()
	for _, tool := range []string{"sh", "openssl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not installed: the auditor's route is not tried", tool)
			return
		}
	}
	cmd := exec.Command("sh", "-c", CheckCommands(readmeRunID, `"$PUB"`, `"$TMPDIR/statement"`))
	cmd.Dir = run
	cmd.Env = append(os.Environ(), "PUB="+pub, "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if good && err != nil {
		t.Fatalf("auditor's recipe: %v\n%s", err, out)
	}
	if !good && err == nil {
		t.Fatalf("auditor's recipe accepts a signature it must refuse:\n%s", out)
	}
}
