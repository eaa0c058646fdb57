package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/reports/evidence"
)

// tamperCase is one way a run folder or bundle reaches an auditor, from
// untouched to hostile, and what `mailchaos verify` must answer: the exit
// code, and a first line of output that starts with first and contains
// names. setup builds the case in an empty folder (the working folder of
// the verify) that already holds fixtureRuns.
type tamperCase struct {
	name        string
	setup       func(t *testing.T, dir string)
	args        []string
	code        int
	first       string
	names       string
	interrupted bool // sent SIGINT while it runs (a child process only)
}

const pubArg = "keys/" + evidence.PublicKeyName

// tamperCases are the rows of the tamper table. Every case but the crafted
// bundles verifies out/run-a, signed with keys/sign-key.pem.
var tamperCases = []tamperCase{
	{name: "untouched, no key", args: []string{"out/run-a"}, code: 0,
		first: "WARNING signature present, not checked: out/run-a (run run-a)", names: "give -pubkey"},
	{name: "untouched, key given", args: []string{"-pubkey", pubArg, "out/run-a"}, code: 0,
		first: "OK out/run-a (run run-a)", names: "signature valid"},
	{name: "untouched bundle, key given", args: []string{"-pubkey", pubArg, "out/run-a/" + evidence.BundleName}, code: 0,
		first: "OK out/run-a/bundle.tar.gz (run run-a)", names: "signature valid"},
	{name: "unsigned run, no key", args: []string{"out/run-u"}, code: 0, first: "OK out/run-u (run run-u)", names: "unsigned"},
	{name: "altered byte", setup: func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, "out/run-a/logs/edge.log")) },
		args: []string{"-pubkey", pubArg, "out/run-a"}, code: 1, first: "FAIL out/run-a (run run-a)", names: "logs/edge.log: altered"},
	{name: "extra file", setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "out/run-a/notes.txt"), "x") },
		args: []string{"-pubkey", pubArg, "out/run-a"}, code: 1, first: "FAIL", names: "notes.txt: extra"},
	{name: "missing file", setup: func(t *testing.T, dir string) { removeFile(t, filepath.Join(dir, "out/run-a/junit.xml")) },
		args: []string{"-pubkey", pubArg, "out/run-a"}, code: 1, first: "FAIL", names: "junit.xml: missing"},
	{name: "swapped signature (another key)", setup: func(t *testing.T, dir string) {
		_, other, _ := ed25519.GenerateKey(nil)
		resign(t, filepath.Join(dir, "out/run-a"), func(d string) error { return evidence.Sign(d, other) })
	}, args: []string{"-pubkey", pubArg, "out/run-a"}, code: 1, first: "FAIL", names: "MANIFEST.sha256.sig: bad-signature (not a signature by key"},
	{name: "signature from another run", setup: func(t *testing.T, dir string) {
		resign(t, filepath.Join(dir, "out/run-a"), func(d string) error { return copySig(filepath.Join(dir, "out/run-b"), d) })
	}, args: []string{"-pubkey", pubArg, "out/run-a"}, code: 1, first: "FAIL", names: "bad-signature"},
	{name: "signature from another run, no key", setup: func(t *testing.T, dir string) {
		resign(t, filepath.Join(dir, "out/run-a"), func(d string) error { return copySig(filepath.Join(dir, "out/run-b"), d) })
	}, args: []string{"out/run-a"}, code: 0, first: "WARNING signature present, not checked", names: "give -pubkey"},
	{name: "symlinked folder (out/latest), extra file", setup: func(t *testing.T, dir string) {
		if err := os.Symlink("run-a", filepath.Join(dir, "out/latest")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "out/run-a/notes.txt"), "x")
	}, args: []string{"-pubkey", pubArg, "out/latest"}, code: 1, first: "FAIL out/latest -> out/run-a (run run-a)", names: "notes.txt: extra"},
	{name: "leftover bundle temp file", setup: func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, "out/run-a/"+evidence.BundleName+".tmp4242"), "half")
	}, args: []string{"-pubkey", pubArg, "out/run-a"}, code: 1, first: "FAIL", names: "bundle.tar.gz.tmp4242: extra (a temporary file"},
	{name: "unsigned run, key given", args: []string{"-pubkey", pubArg, "out/run-u"}, code: 1, first: "FAIL", names: "MANIFEST.sha256.sig: missing"},
	{name: "100,000-entry crafted bundle", setup: func(t *testing.T, dir string) { craftedBundle(t, filepath.Join(dir, "crafted.tar.gz"), 100_000) },
		args: []string{"crafted.tar.gz"}, code: 1, first: "FAIL crafted.tar.gz (run x)", names: "100000 problem(s)"},
	{name: "100,001-entry crafted bundle", setup: func(t *testing.T, dir string) { craftedBundle(t, filepath.Join(dir, "crafted.tar.gz"), 100_001) },
		args: []string{"crafted.tar.gz"}, code: 1, first: "FAIL crafted.tar.gz", names: "more than 100000 entries, the limit"},
	{name: "Ctrl-C during the 100,000-entry bundle", setup: func(t *testing.T, dir string) { craftedBundle(t, filepath.Join(dir, "crafted.tar.gz"), 100_000) },
		args: []string{"crafted.tar.gz"}, code: 2, first: "mailchaos verify: interrupted", names: "context canceled", interrupted: true},
}

// fixtureRuns writes keys/ (a key pair from keygen) and three sealed run
// folders: out/run-a and out/run-b signed with it, out/run-u unsigned.
func fixtureRuns(t *testing.T, dir string) {
	t.Helper()
	if err := keygenMain(context.Background(), []string{"--out", filepath.Join(dir, "keys")}, io.Discard, io.Discard); err != nil {
		t.Fatalf("keygen: %v", err)
	}
	key, err := evidence.LoadPrivateKey(filepath.Join(dir, "keys", evidence.PrivateKeyName))
	if err != nil {
		t.Fatal(err)
	}
	for id, k := range map[string]ed25519.PrivateKey{"run-a": key, "run-b": key, "run-u": nil} {
		rd := filepath.Join(dir, "out", id)
		writeFile(t, filepath.Join(rd, "verdict.json"), `{"run_id":"`+id+`"}`+"\n")
		writeFile(t, filepath.Join(rd, "junit.xml"), "<testsuites/>\n")
		writeFile(t, filepath.Join(rd, "logs", "edge.log"), "edge up\n")
		if _, err := evidence.WriteManifest(rd); err != nil {
			t.Fatal(err)
		}
		if k != nil {
			if err := evidence.Sign(rd, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := evidence.WriteBundle(rd); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	writeFile(t, p, string(b))
}

// resign replaces a run's signature and rebuilds its bundle, as a forger
// would, so that folder and bundle agree and only the signature can tell.
func resign(t *testing.T, runDir string, sign func(dir string) error) {
	t.Helper()
	if err := sign(runDir); err != nil {
		t.Fatal(err)
	}
	if err := evidence.WriteBundle(runDir); err != nil {
		t.Fatal(err)
	}
}

func copySig(from, to string) error {
	b, err := os.ReadFile(filepath.Join(from, evidence.SignatureName))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(to, evidence.SignatureName), b, 0o644)
}

// craftedBundle writes a hostile bundle of n entries: a manifest listing
// one file that is absent, then n-1 empty files with 4,000-byte names that
// no manifest lists (about 500 MB uncompressed, 5 MB compressed). A
// verifier that keeps every entry it reads holds hundreds of MB of names.
// archive/tar writes one entry; the rest are copies of it with the
// counter in the name patched, which is what keeps this to a second.
func craftedBundle(t *testing.T, p string, n int) {
	t.Helper()
	var head, entry bytes.Buffer
	tw := tar.NewWriter(&head)
	manifest := strings.Repeat("0", 64) + "  absent.txt\n"
	if err := tw.WriteHeader(&tar.Header{Name: "x/" + evidence.ManifestName, Mode: 0o644, Size: int64(len(manifest)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(manifest)); err != nil {
		t.Fatal(err)
	}
	const marker = "QQQQQQQQ"
	tw2 := tar.NewWriter(&entry)
	err := tw2.WriteHeader(&tar.Header{Name: "x/" + strings.Repeat("n", 3990) + marker, Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
	if err != nil || tw.Flush() != nil || tw2.Flush() != nil {
		t.Fatalf("tar: %v", err)
	}
	tmpl := entry.Bytes()
	at := bytes.Index(tmpl, []byte(marker))
	if at < 0 || bytes.LastIndex(tmpl, []byte(marker)) != at {
		t.Fatal("the entry template does not hold its name's counter exactly once")
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	gz.Write(head.Bytes())
	for i := 1; i < n; i++ {
		copy(tmpl[at:], fmt.Sprintf("%08d", i))
		gz.Write(tmpl)
	}
	gz.Write(make([]byte, 1024)) // the end-of-archive blocks
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

// firstLine returns the first line of what a verify printed: stdout's,
// or stderr's when stdout is empty (verify could not start).
func firstLine(stdout, stderr string) string {
	s := stdout
	if s == "" {
		s = stderr
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// checkCase fails t unless a verify's answer is what tc wants.
func checkCase(t *testing.T, tc tamperCase, code int, stdout, stderr string) {
	t.Helper()
	first := firstLine(stdout, stderr)
	if code != tc.code || !strings.HasPrefix(first, tc.first) || !strings.Contains(stdout+stderr, tc.names) {
		t.Errorf("%s: exit %d, first line %q; want exit %d, a first line starting %q, output naming %q\nstdout:\n%s\nstderr:\n%s",
			tc.name, code, first, tc.code, tc.first, tc.names, head(stdout), head(stderr))
	}
	if tc.code == 0 && strings.HasPrefix(first, "OK") && strings.Contains(first, "signature") && !strings.Contains(first, "signature valid") {
		t.Errorf("%s: an OK line that speaks of a signature not found valid: %q", tc.name, first)
	}
}

func head(s string) string {
	if lines := strings.SplitN(s, "\n", 8); len(lines) == 8 {
		return strings.Join(lines[:7], "\n") + "\n..."
	}
	return s
}

// setupCase builds a case in a fresh folder and returns it.
func setupCase(t *testing.T, tc tamperCase) string {
	t.Helper()
	dir := t.TempDir()
	fixtureRuns(t, dir)
	if tc.setup != nil {
		tc.setup(t, dir)
	}
	return dir
}

// heavy reports whether a case reads a 500 MB crafted bundle: the tamper
// table runs those, in a child process where its memory can be measured.
func (tc tamperCase) heavy() bool {
	return strings.Contains(tc.name, "crafted") || strings.Contains(tc.name, "100,000")
}

// The tamper table's cases, in process (the heavy ones are the table's).
func TestVerifyCommand(t *testing.T) {
	for _, tc := range tamperCases {
		if tc.interrupted || tc.heavy() {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(setupCase(t, tc))
			code, stdout, stderr := verifyInProcess(context.Background(), tc.args...)
			checkCase(t, tc, code, stdout, stderr)
		})
	}
	if code, _, _ := verifyInProcess(context.Background(), filepath.Join(t.TempDir(), "nope")); code != 2 {
		t.Fatalf("missing path: exit %d", code)
	}
}

// verifyInProcess runs `mailchaos verify args...` in this process.
func verifyInProcess(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = exitCode(ctx, "verify", verifyMain(ctx, args, &out, &errb), &errb)
	return code, out.String(), errb.String()
}

// A verify whose context is done (Ctrl-C) stops, exits 2 and says so.
func TestVerifyInterrupted(t *testing.T) {
	dir := t.TempDir()
	fixtureRuns(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, stdout, stderr := verifyInProcess(ctx, filepath.Join(dir, "out/run-a"))
	if code != 2 || stdout != "" || !strings.Contains(stderr, "interrupted") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2, nothing, interrupted", code, stdout, stderr)
	}
}

func TestKeygenCommand(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keys")
	var out, errb bytes.Buffer
	if err := keygenMain(ctx, []string{"--out", dir}, &out, &errb); err != nil {
		t.Fatalf("keygen: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, evidence.PrivateKeyName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	pub, err := evidence.LoadPublicKey(filepath.Join(dir, evidence.PublicKeyName))
	if err != nil || !strings.Contains(out.String(), evidence.Fingerprint(pub)) {
		t.Fatalf("public key: %v; output does not print its fingerprint:\n%s", err, out.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keygen", "--out", dir}, "exists; remove it or choose another folder"},
		{[]string{"keygen"}, "--out: give the folder"},
		{[]string{"keygen", "--out", dir, "extra"}, "unexpected arguments"},
		{[]string{"run", "--sign-key", filepath.Join(dir, evidence.PublicKeyName)}, "--sign-key"},
	} {
		errb.Reset()
		if code := run(ctx, tc.args, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, want 2 naming %q:\n%s", tc.args, code, tc.want, errb.String())
		}
	}
}
