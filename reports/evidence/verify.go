package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Kind classifies a problem found by Verify.
type Kind string

// The kinds of problems Verify reports.
const (
	Altered    Kind = "altered"       // the file's hash differs from the manifest's
	Missing    Kind = "missing"       // listed in the manifest, not present
	Extra      Kind = "extra"         // present, not listed in the manifest
	Unreadable Kind = "unreadable"    // cannot be read or parsed (a corrupt bundle or manifest)
	BadSig     Kind = "bad-signature" // the manifest's signature does not verify, or is absent when required
)

// Problem is one thing wrong with a run folder or bundle, naming the file.
type Problem struct {
	Path   string // relative to the run folder; bundle problems are "bundle.tar.gz: <path>"
	Kind   Kind
	Detail string
}

// String formats the problem as "<path>: <kind> (<detail>)".
func (p Problem) String() string {
	if p.Detail == "" {
		return fmt.Sprintf("%s: %s", p.Path, p.Kind)
	}
	return fmt.Sprintf("%s: %s (%s)", p.Path, p.Kind, p.Detail)
}

// Report is the result of Verify.
type Report struct {
	Source   string    // the folder or bundle verified
	Files    int       // files listed in the manifest
	Signed   bool      // a MANIFEST.sha256.sig is present
	SigValid bool      // the signature was checked against a public key and is valid
	Problems []Problem // sorted by path; empty when everything matches
	Checked  []string  // what was checked, for the human reading the output
}

// OK reports whether nothing is wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Err returns nil when the report is OK and otherwise an error naming every
// problem, one per line.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = p.String()
	}
	return fmt.Errorf("verify %s: %d problem(s):\n  %s", r.Source, len(r.Problems), strings.Join(lines, "\n  "))
}

func (r *Report) add(path string, kind Kind, detail string) {
	r.Problems = append(r.Problems, Problem{Path: path, Kind: kind, Detail: detail})
}

func (r *Report) sort() {
	slices.SortStableFunc(r.Problems, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// PublicKey, if set, must verify MANIFEST.sha256.sig; a missing or
	// invalid signature is then a problem. Without it a signature present is
	// reported as unchecked.
	PublicKey ed25519.PublicKey
}

// Verify checks a run folder or a bundle.tar.gz (by path) against its
// manifest: every listed file must exist with the listed hash and nothing
// else may be present. For a folder that also holds bundle.tar.gz, the
// bundle is verified too (its bytes against bundle.tar.gz.sha256, its
// contents against its manifest, and its manifest against the folder's).
// The error is for a path that cannot be read at all; everything wrong with
// the evidence itself is in the Report.
func Verify(p string, opts VerifyOptions) (*Report, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	r := &Report{Source: p}
	if st.IsDir() {
		verifyDir(r, p, opts)
	} else {
		verifyBundleFile(r, p, "", nil, nil, opts)
	}
	r.sort()
	return r, nil
}

func verifyDir(r *Report, dir string, opts VerifyOptions) {
	manifest, entries, err := readManifestFile(filepath.Join(dir, ManifestName))
	if err != nil {
		kind := Unreadable
		if errors.Is(err, fs.ErrNotExist) {
			kind = Missing
		}
		r.add(ManifestName, kind, err.Error())
		return
	}
	r.Files = len(entries)
	r.Checked = append(r.Checked, fmt.Sprintf("%s: %d files", ManifestName, len(entries)))
	listed := map[string]bool{}
	for _, e := range entries {
		listed[e.Path] = true
		sum, err := HashFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.add(e.Path, Missing, "")
		case err != nil:
			r.add(e.Path, Unreadable, err.Error())
		case sum != e.SHA256:
			r.add(e.Path, Altered, "sha256 "+sum+", manifest says "+e.SHA256)
		}
	}
	files, odd, err := listFiles(dir)
	if err != nil {
		r.add(".", Unreadable, err.Error())
	}
	for _, f := range files {
		if !listed[f] {
			r.add(f, Extra, "not in "+ManifestName)
		}
	}
	for _, f := range odd {
		r.add(f, Extra, "not a regular file")
	}
	sig, err := os.ReadFile(filepath.Join(dir, SignatureName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.add(SignatureName, Unreadable, err.Error())
	}
	hasSig := err == nil
	checkSignature(r, "", manifest, sig, hasSig, opts)

	bundle := filepath.Join(dir, BundleName)
	if _, err := os.Stat(bundle); err == nil {
		if !hasSig {
			sig = nil
		} else if sig == nil {
			sig = []byte{}
		}
		verifyBundleFile(r, bundle, BundleName+": ", manifest, sig, opts)
		checkBundleSum(r, dir)
	} else if _, err := os.Stat(filepath.Join(dir, BundleSumName)); err == nil {
		r.add(BundleName, Missing, BundleSumName+" lists it")
	}
}

// checkBundleSum checks bundle.tar.gz against bundle.tar.gz.sha256.
func checkBundleSum(r *Report, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, BundleSumName))
	if errors.Is(err, fs.ErrNotExist) {
		r.add(BundleSumName, Missing, "")
		return
	}
	if err != nil {
		r.add(BundleSumName, Unreadable, err.Error())
		return
	}
	entries, err := ParseManifest(bytes.NewReader(b))
	if err != nil || len(entries) != 1 || entries[0].Path != BundleName {
		r.add(BundleSumName, Unreadable, "want one line \"<sha256>  bundle.tar.gz\"")
		return
	}
	sum, err := HashFile(filepath.Join(dir, BundleName))
	if err != nil {
		r.add(BundleName, Unreadable, err.Error())
		return
	}
	if sum != entries[0].SHA256 {
		r.add(BundleName, Altered, "sha256 "+sum+", "+BundleSumName+" says "+entries[0].SHA256+": one of the two was changed")
		return
	}
	r.Checked = append(r.Checked, BundleSumName+": bundle bytes match")
}

func checkSignature(r *Report, label string, manifest, sig []byte, present bool, opts VerifyOptions) {
	r.Signed = r.Signed || present
	switch {
	case opts.PublicKey == nil && present:
		r.Checked = append(r.Checked, label+SignatureName+": present, not checked (no public key given)")
	case opts.PublicKey == nil:
	case !present:
		r.add(label+SignatureName, Missing, "a public key was given")
	case len(sig) != ed25519.SignatureSize:
		r.add(label+SignatureName, BadSig, fmt.Sprintf("%d bytes, an ed25519 signature has %d", len(sig), ed25519.SignatureSize))
	case !ed25519.Verify(opts.PublicKey, manifest, sig):
		r.add(label+SignatureName, BadSig, "does not verify "+ManifestName+" with the given public key")
	default:
		r.SigValid = label == "" || r.SigValid
		r.Checked = append(r.Checked, label+SignatureName+": valid ed25519 signature")
	}
}

// verifyBundleFile checks a bundle's contents against the manifest it
// carries. label prefixes problem paths. If wantManifest is set (verifying a
// folder's bundle), the bundle's manifest must be byte-identical to it, and
// its signature to wantSig (nil: the folder has none).
func verifyBundleFile(r *Report, p, label string, wantManifest, wantSig []byte, opts VerifyOptions) {
	f, err := os.Open(p)
	if err != nil {
		r.add(label+filepath.Base(p), Unreadable, err.Error())
		return
	}
	defer f.Close()
	hashes, manifest, sig, hasSig, err := readBundle(f)
	if err != nil {
		name := filepath.Base(p)
		if label != "" {
			name = BundleName
		}
		r.add(name, Unreadable, err.Error())
		return
	}
	if manifest == nil {
		r.add(label+ManifestName, Missing, "not in the bundle")
		return
	}
	entries, err := ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		r.add(label+ManifestName, Unreadable, err.Error())
		return
	}
	if wantManifest != nil {
		if !bytes.Equal(wantManifest, manifest) {
			r.add(ManifestName, Altered, "differs from the copy in "+BundleName)
		}
		switch {
		case wantSig == nil && hasSig:
			r.add(SignatureName, Missing, "the copy in "+BundleName+" exists")
		case wantSig != nil && !hasSig:
			r.add(label+SignatureName, Missing, "the folder has one")
		case hasSig && !bytes.Equal(wantSig, sig):
			r.add(SignatureName, Altered, "differs from the copy in "+BundleName)
		}
	}
	if label == "" {
		r.Files = len(entries)
	}
	r.Checked = append(r.Checked, fmt.Sprintf("%s%s: %d files", label, ManifestName, len(entries)))
	listed := map[string]bool{}
	for _, e := range entries {
		listed[e.Path] = true
		sum, ok := hashes[e.Path]
		switch {
		case !ok:
			r.add(label+e.Path, Missing, "")
		case sum != e.SHA256:
			r.add(label+e.Path, Altered, "sha256 "+sum+", manifest says "+e.SHA256)
		}
	}
	for name := range hashes {
		if !listed[name] {
			r.add(label+name, Extra, "not in "+ManifestName)
		}
	}
	checkSignature(r, label, manifest, sig, hasSig, opts)
}

// readBundle reads a whole bundle, hashing every entry. Entries must sit
// under one top-level folder; the names returned are relative to it. The
// gzip stream is read to its end so that its CRC is checked.
func readBundle(rd io.Reader) (hashes map[string]string, manifest, sig []byte, hasSig bool, err error) {
	gz, err := gzip.NewReader(rd)
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("gzip: %w", err)
	}
	tr := tar.NewReader(gz)
	hashes = map[string]string{}
	prefix := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, false, fmt.Errorf("tar: %w", err)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		name := cleanRel(hdr.Name)
		top, rel, ok := strings.Cut(name, "/")
		if !ok {
			return nil, nil, nil, false, fmt.Errorf("tar: %s is not under the bundle's top-level folder", hdr.Name)
		}
		if prefix == "" {
			prefix = top
		} else if top != prefix {
			return nil, nil, nil, false, fmt.Errorf("tar: %s is outside %s/", hdr.Name, prefix)
		}
		if hdr.Typeflag != tar.TypeReg {
			hashes[rel] = "(not a regular file)"
			continue
		}
		if _, dup := hashes[rel]; dup {
			return nil, nil, nil, false, fmt.Errorf("tar: %s appears twice", hdr.Name)
		}
		switch rel {
		case ManifestName, SignatureName:
			b, err := io.ReadAll(io.LimitReader(tr, maxManifestBytes+1))
			if err != nil {
				return nil, nil, nil, false, fmt.Errorf("tar: %s: %w", hdr.Name, err)
			}
			if len(b) > maxManifestBytes {
				return nil, nil, nil, false, fmt.Errorf("tar: %s: too large", hdr.Name)
			}
			if rel == ManifestName {
				manifest = b
			} else {
				sig, hasSig = b, true
			}
			hashes[rel] = "" // seen; not an artifact
			continue
		}
		h := newHasher()
		if _, err := io.Copy(h, tr); err != nil {
			return nil, nil, nil, false, fmt.Errorf("tar: %s: %w", hdr.Name, err)
		}
		hashes[rel] = h.hex()
	}
	// The tar reader stops at the end-of-archive blocks; drain the rest so
	// the gzip reader checks the CRC and length of the whole stream.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, nil, nil, false, fmt.Errorf("gzip: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, nil, nil, false, fmt.Errorf("gzip: %w", err)
	}
	delete(hashes, ManifestName)
	delete(hashes, SignatureName)
	return hashes, manifest, sig, hasSig, nil
}

type hasher struct{ hash.Hash }

func newHasher() *hasher      { return &hasher{sha256.New()} }
func (h *hasher) hex() string { return hex.EncodeToString(h.Sum(nil)) }
