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
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// manifestSeeds are manifests as the writer writes them, and the ways a
// hand-made or hostile one differs.
func manifestSeeds(f *testing.F) [][]byte {
	dir := sampleRun(f, f.TempDir(), "run-1")
	seal(f, dir, nil)
	real, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		f.Fatal(err)
	}
	h := sha256hex("")
	return [][]byte{
		real, nil,
		[]byte(h + " *bin.dat\n" + h + "  t x\n"),
		[]byte(h + "  f\r\n"), []byte(h + "  f\r\r\n"), []byte(h + "  f"), []byte(h + "  f\n\n"),
		[]byte(h + "  ../up\n"), []byte(h + "  a//b\n"), []byte(h + "  f\n" + h + "  f\n"),
		[]byte(strings.ToUpper(h) + "  f\n"), []byte(h + "  " + strings.Repeat("n", maxNameBytes+1) + "\n"),
	}
}

// textMode is a manifest with every binary-mode marker (" *") made the
// text-mode separator FormatManifest writes; in must parse.
func textMode(in []byte) []byte {
	out := bytes.Clone(in)
	for i := 0; i < len(out); {
		if out[i+65] == '*' {
			out[i+65] = ' '
		}
		i += bytes.IndexByte(out[i:], '\n') + 1
	}
	return out
}

// FuzzParseManifest: whatever the bytes, parsing ends in an error naming
// the manifest, or in entries within the limits, each a lower-case hex
// SHA-256 and a path the writer would write, none twice, with the hash of
// exactly the bytes read; written back, the entries give the input again
// (binary-mode markers aside) and parse to themselves.
func FuzzParseManifest(f *testing.F) {
	for _, s := range manifestSeeds(f) {
		f.Add(s)
	}
	lim := Limits{Entries: 16, ManifestBytes: 4 << 10}.withDefaults()
	f.Fuzz(func(t *testing.T, in []byte) {
		es, sum, err := parseManifest(bytes.NewReader(in), lim)
		if err != nil {
			if es != nil || sum != "" || !strings.HasPrefix(err.Error(), "manifest ") {
				t.Fatalf("error %q with %d entries, hash %q", err, len(es), sum)
			}
			return
		}
		if len(es) > lim.Entries || int64(len(in)) > lim.ManifestBytes {
			t.Fatalf("%d entries from %d bytes: past the limits %+v", len(es), len(in), lim)
		}
		if want := sha256hex(string(in)); sum != want {
			t.Fatalf("hash %s, the bytes have %s", sum, want)
		}
		seen := map[string]bool{}
		for _, e := range es {
			if err := checkName(e.Path); err != nil || seen[e.Path] {
				t.Fatalf("entry %q: %v (seen before: %v)", e.Path, err, seen[e.Path])
			}
			seen[e.Path] = true
			if len(e.SHA256) != 64 || strings.Trim(e.SHA256, "0123456789abcdef") != "" {
				t.Fatalf("entry %q: hash %q", e.Path, e.SHA256)
			}
		}
		var out bytes.Buffer
		if err := FormatManifest(&out, es); err != nil {
			t.Fatalf("parsed entries do not format: %v", err)
		}
		if want := textMode(in); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("written back:\n%q\nthe input (text mode):\n%q", out.Bytes(), want)
		}
		again, err := ParseManifest(&out)
		if err != nil || !slices.Equal(again, es) {
			t.Fatalf("written back, parses to %v, %v", again, err)
		}
	})
}

// fuzzRun is the sealed, signed run folder FuzzVerifyFolder tampers with,
// and what the tampering may use.
type fuzzRun struct {
	src     string // the sealed run-1
	other   string // run-2: the same artifacts but its history, sealed and signed with the same key
	outside string // a copy of run-1 outside every folder verified
	forger  ed25519.PrivateKey
}

func newFuzzRun(f *testing.F) fuzzRun {
	parent := f.TempDir()
	fr := fuzzRun{src: sampleRun(f, parent, "run-1"), other: sampleRun(f, parent, "run-2"), outside: filepath.Join(f.TempDir(), "run-1")}
	seal(f, fr.src, testKey)
	seal(f, fr.other, testKey)
	if err := os.CopyFS(fr.outside, os.DirFS(fr.src)); err != nil {
		f.Fatal(err)
	}
	_, fr.forger, _ = ed25519.GenerateKey(nil)
	return fr
}

// snapshot is what a folder holds that is evidence: each file and
// non-folder by its slash path, with its content or what it is. Folders,
// modes and times are not evidence.
func snapshot(dir string) (map[string]string, error) {
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			snap[rel] = "file " + string(b)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			snap[rel] = "symlink " + target
		default:
			snap[rel] = "other " + d.Type().String()
		}
		return nil
	})
	return snap, err
}

// ops reads tampering operations from fuzz bytes; past the end it reads
// zeros.
type ops struct{ b []byte }

func (o *ops) next() byte {
	if len(o.b) == 0 {
		return 0
	}
	c := o.b[0]
	o.b = o.b[1:]
	return c
}

func (o *ops) bytes(n int) []byte {
	n = min(n, len(o.b))
	b := o.b[:n]
	o.b = o.b[n:]
	return b
}

// newNames are names tampering adds: artifacts, names that look like
// evidence or its leftovers, names the writer refuses.
var newNames = []string{
	"extra.txt", "logs/new.log", "a/b/c.txt", "with space.txt", "junit.xml",
	BundleName + ".tmp1", "." + ManifestName + ".tmp2", ManifestName, SignatureName, BundleSumName, BundleName,
	"unicode-é.txt", `back\slash`, "cr\r", "logs/" + ManifestName, "steady/notes.txt",
}

// tamper applies one operation read from o to the folder of root. Every
// step goes through root, so that none reaches the outside copy by a
// symlink tampering made, and none opens a named pipe for good; a step
// the filesystem refuses (a file where a folder is) is skipped.
func (fr fuzzRun) tamper(root *os.Root, o *ops) {
	var present []string
	fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			present = append(present, p)
		}
		return nil
	})
	op, pick := o.next(), int(o.next())
	target := newNames[pick%len(newNames)]
	if len(present) > 0 {
		target = present[pick%len(present)]
	}
	fresh := newNames[int(o.next())%len(newNames)]
	switch op % 13 {
	case 0: // flip a byte (v 0 changes nothing)
		if b, err := readRegular(root, target); err == nil && len(b) > 0 {
			off := (int(o.next())<<8 | int(o.next())) % len(b)
			b[off] ^= o.next()
			replaceFile(root, target, b)
		}
	case 1: // truncate (to its own size changes nothing)
		if b, err := readRegular(root, target); err == nil {
			replaceFile(root, target, b[:(int(o.next())<<8|int(o.next()))%(len(b)+1)])
		}
	case 2: // append
		if b, err := readRegular(root, target); err == nil {
			replaceFile(root, target, append(b, o.bytes(int(o.next()%8)+1)...))
		}
	case 3:
		root.Remove(target)
	case 4: // a new file, or one overwritten
		root.MkdirAll(filepath.Dir(fresh), 0o755)
		replaceFile(root, fresh, o.bytes(int(o.next()%32)))
	case 5: // a symlink in place of a file
		outside := filepath.Join(fr.outside, filepath.FromSlash(target))
		links := []string{outside, "/dev/zero", "../" + filepath.Base(target), "dangling"}
		if len(present) > 0 {
			links = append(links, present[int(o.next())%len(present)]) // within the folder
		}
		to := links[int(o.next())%len(links)]
		if to == outside && o.next()%2 == 0 {
			// The same, climbing out with "..".
			if rel, err := filepath.Rel(filepath.Join(root.Name(), filepath.Dir(target)), outside); err == nil {
				to = rel
			}
		}
		if root.Remove(target) == nil {
			root.Symlink(to, target)
		}
	case 6: // a named pipe in place of a file
		if root.Remove(target) == nil {
			syscall.Mkfifo(filepath.Join(root.Name(), target), 0o644)
		}
	case 7: // a symlink to the outside copy in place of a file's folder
		if d := filepath.Dir(target); d != "." && root.RemoveAll(d) == nil {
			root.Symlink(filepath.Join(fr.outside, d), d)
		}
	case 8: // renamed, over another or to a new name
		root.MkdirAll(filepath.Dir(fresh), 0o755)
		root.Rename(target, fresh)
	case 9: // an empty folder (not evidence: changes nothing)
		root.MkdirAll(filepath.Join(filepath.Dir(fresh), "empty"), 0o755)
	case 10: // the same file of the other run (identical unless its history or evidence)
		if b, err := os.ReadFile(filepath.Join(fr.other, filepath.FromSlash(target))); err == nil {
			replaceFile(root, target, b)
		}
	case 11: // a forger seals again, signing with another key or not at all
		dir := root.Name()
		if _, err := WriteManifest(dir); err == nil {
			if o.next()%2 == 0 {
				Sign(dir, fr.forger)
			}
			WriteBundle(dir)
		}
	case 12: // many files
		root.Mkdir("many", 0o755)
		for i := range int(o.next()) {
			replaceFile(root, fmt.Sprintf("many/%d", i), nil)
		}
	}
}

// readRegular reads name under root if it is a regular file (not
// through a symlink at its end).
func readRegular(root *os.Root, name string) ([]byte, error) {
	st, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	return root.ReadFile(name)
}

// replaceFile puts a new regular file at name under root, in place of
// whatever was there but a folder.
func replaceFile(root *os.Root, name string, data []byte) {
	if st, err := root.Lstat(name); err == nil && st.IsDir() {
		return
	}
	root.Remove(name)
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return
	}
	f.Write(data)
	f.Close()
}

// verifyOrHang verifies p and panics, ending the fuzz worker with the
// input saved, if it has not returned within a minute: a hang is a crash.
func verifyOrHang(p string, opts VerifyOptions) (*Report, error) {
	watchdog := time.AfterFunc(time.Minute, func() { panic("verify " + p + ": still running after a minute") })
	defer watchdog.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Verify(ctx, p, opts)
}

// checkBounds holds a report to the documented limits: problems listed up
// to lim.Problems (plus the stops that say why verification ended), files
// up to lim.Entries.
func checkBounds(t *testing.T, r *Report, lim Limits) {
	t.Helper()
	if len(r.Problems) > lim.Problems+3 || r.Files > lim.Entries {
		t.Fatalf("%d problems listed (limit %d), %d files (limit %d)", len(r.Problems), lim.Problems, r.Files, lim.Entries)
	}
	if r.OK() && r.Unlisted > 0 {
		t.Fatalf("OK with %d unlisted problems", r.Unlisted)
	}
}

// FuzzVerifyFolder tampers with a sealed, signed run folder (bytes
// flipped, files cut, added, removed, renamed, replaced by symlinks that
// lead out to the very same bytes, by named pipes, folders replaced by
// symlinks, files of another run, the folder re-sealed by a forger, many
// files) and verifies it with the public key: verify ends within the
// limits, and it says OK exactly when the folder's evidence is what was
// sealed (only the bundle and its sum removed together is no tampering:
// an unpacked bundle has neither).
func FuzzVerifyFolder(f *testing.F) {
	fr := newFuzzRun(f)
	for _, s := range [][]byte{
		nil, {0, 0, 0, 0, 0, 0}, {0, 3, 0, 0, 1, 1}, {3, 5}, {4, 0, 0, 3, 'x'}, {5, 7, 0, 0, 0},
		{5, 7, 0, 0, 1}, {6, 7}, {6, 0}, {7, 2}, {8, 1, 3}, {9, 0, 0}, {10, 4}, {11, 0, 0, 0}, {11, 0, 0, 1},
		{12, 0, 0, 200}, {3, 1, 0, 3, 1, 0}, {1, 2, 0, 0, 0}, {2, 8, 0, 0, '\n'},
	} {
		f.Add(s)
	}
	lim := Limits{Entries: 48, Problems: 8}.withDefaults()
	pristine, err := snapshot(fr.src)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := filepath.Join(t.TempDir(), "run-1")
		if err := os.CopyFS(dir, os.DirFS(fr.src)); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		o := &ops{b: in}
		for range 6 {
			if len(o.b) == 0 {
				break
			}
			fr.tamper(root, o)
		}
		now, err := snapshot(dir)
		if err != nil {
			t.Fatal(err)
		}
		was := maps.Clone(pristine)
		if _, ok := now[BundleName]; !ok {
			if _, ok := now[BundleSumName]; !ok {
				delete(was, BundleName)
				delete(was, BundleSumName)
			}
		}
		tampered := !maps.Equal(now, was)
		r, err := verifyOrHang(dir, VerifyOptions{PublicKey: testPub(), Limits: lim})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		checkBounds(t, r, lim)
		switch {
		case tampered && r.OK():
			t.Fatalf("tampered folder verifies OK: %v", changed(was, now))
		case !tampered && !r.OK():
			t.Fatalf("untouched evidence fails: %v", r.Err())
		case r.OK() && (!r.SigValid || r.RunID != "run-1"):
			t.Fatalf("OK without a valid signature of run-1: %+v", r)
		}
		// Without a key, a re-sealed folder may verify: only the bounds hold.
		r, err = verifyOrHang(dir, VerifyOptions{Limits: lim})
		if err != nil {
			t.Fatalf("verify without a key: %v", err)
		}
		checkBounds(t, r, lim)
	})
}

// changed names the paths whose snapshots differ.
func changed(was, now map[string]string) []string {
	var out []string
	for p := range maps.Keys(was) {
		if now[p] != was[p] {
			out = append(out, p)
		}
	}
	for p := range maps.Keys(now) {
		if _, ok := was[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// tarOf is a bundle's uncompressed tar stream, for seeds.
func tarOf(f *testing.F, bundle []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		f.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// unpacked is what extracting a bundle gives, as tar -x would: each
// regular file by its cleaned name, the last copy winning; ok is false
// when an entry is neither a folder nor a regular file.
func unpacked(b []byte) (files map[string]string, ok bool) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, false
	}
	tr := tar.NewReader(zr)
	files = map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, true
		}
		if err != nil {
			return nil, false
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			body, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return nil, false
			}
			files[cleanRel(hdr.Name)] = string(body)
		default:
			return nil, false
		}
	}
}

// FuzzVerifyBundle verifies bundles built from fuzz bytes: with the
// first byte even, the rest is a tar stream gzipped here (so the fuzzer
// works on the archive, not on compressed bytes); odd, the rest is the
// file as is. Verify ends within the limits, and a bundle it finds OK
// with the key unpacks to exactly the sealed run: its manifest, its
// signature and every artifact, nothing else (a run signed with the key:
// run-1, or run-2, signed too).
func FuzzVerifyBundle(f *testing.F) {
	fr := newFuzzRun(f)
	bundle, err := os.ReadFile(filepath.Join(fr.src, BundleName))
	if err != nil {
		f.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(fr.other, BundleName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte{0}, tarOf(f, bundle)...))
	f.Add(append([]byte{1}, bundle...))
	f.Add(append([]byte{0}, tarOf(f, other)...))
	f.Add([]byte{0})
	f.Add([]byte{1})
	// The runs signed with the key: a bundle of either is good evidence
	// of that run.
	want := map[string]map[string]string{}
	for _, dir := range []string{fr.src, fr.other} {
		sealed, err := snapshot(dir)
		if err != nil {
			f.Fatal(err)
		}
		id := filepath.Base(dir)
		want[id] = map[string]string{}
		for p, v := range sealed {
			if p != BundleName && p != BundleSumName {
				want[id][id+"/"+p] = strings.TrimPrefix(v, "file ")
			}
		}
	}
	lim := Limits{Entries: 64, TotalBytes: 1 << 20, EntryBytes: 256 << 10, ManifestBytes: 16 << 10, Problems: 8}.withDefaults()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		b := in[1:]
		if in[0]%2 == 0 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			zw.Write(b)
			zw.Close()
			b = buf.Bytes()
		}
		p := filepath.Join(t.TempDir(), BundleName)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := verifyOrHang(p, VerifyOptions{PublicKey: testPub(), Limits: lim})
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		checkBounds(t, r, lim)
		if !r.OK() {
			return
		}
		sealed := want[r.RunID]
		if !r.SigValid || sealed == nil {
			t.Fatalf("OK without a valid signature of a sealed run: %+v", r)
		}
		got, ok := unpacked(b)
		if !ok || !maps.Equal(got, sealed) {
			t.Fatalf("OK, and it unpacks to %d files (readable %v), not the %d of sealed run %s: %v", len(got), ok, len(sealed), r.RunID, changed(sealed, got))
		}
	})
}
