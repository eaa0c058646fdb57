package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
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
	Unreadable Kind = "unreadable"    // cannot be read or parsed (a corrupt bundle or manifest), or past a limit
	BadSig     Kind = "bad-signature" // the signature does not verify, or is absent when required
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

// Limits bound what Verify reads, so that a crafted folder or bundle can
// make it neither hold unbounded memory nor read forever. Past a limit,
// Verify stops and reports the folder or bundle unreadable, naming the
// limit. A zero field takes the DefaultLimits value.
type Limits struct {
	// Entries bounds the entries of a folder and of a bundle (files and
	// folders alike) and the lines of a manifest.
	Entries int
	// ManifestBytes bounds the size of MANIFEST.sha256.
	ManifestBytes int64
	// EntryBytes bounds one file of a bundle (uncompressed).
	EntryBytes int64
	// TotalBytes bounds a bundle's whole uncompressed stream: a gzip bomb
	// stops here.
	TotalBytes int64
	// Problems bounds the problems listed; past it they are only counted
	// (Report.Unlisted).
	Problems int
}

// DefaultLimits are far above any real run (hundreds of files, histories of
// a few GiB) and keep Verify's memory to tens of MiB whatever it is given:
// it streams every file and holds one manifest's entries at most.
var DefaultLimits = Limits{
	Entries:       100_000,
	ManifestBytes: 32 << 20,
	EntryBytes:    16 << 30,
	TotalBytes:    64 << 30,
	Problems:      1000,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Entries > 0 {
		d.Entries = l.Entries
	}
	if l.ManifestBytes > 0 {
		d.ManifestBytes = l.ManifestBytes
	}
	if l.EntryBytes > 0 {
		d.EntryBytes = l.EntryBytes
	}
	if l.TotalBytes > 0 {
		d.TotalBytes = l.TotalBytes
	}
	if l.Problems > 0 {
		d.Problems = l.Problems
	}
	return d
}

// Report is the result of Verify.
type Report struct {
	Source string // the folder or bundle verified, as given
	// Resolved is the folder Source leads to when it is (or passes through)
	// a symlink, such as out/latest; empty otherwise.
	Resolved string
	// RunID is the run the evidence is for: the name of the run folder, or
	// the top-level folder of a bundle. A signature binds it.
	RunID    string
	Files    int       // files listed in the manifest
	Signed   bool      // a MANIFEST.sha256.sig is present
	SigValid bool      // the signature was checked against a public key and is valid
	Problems []Problem // sorted by path; empty when everything matches
	// Unlisted counts the problems past Limits.Problems, not in Problems.
	Unlisted int
	Checked  []string // what was checked, for the human reading the output

	maxProblems int
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
	if r.Unlisted > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more problem(s), not listed past the first %d", r.Unlisted, len(r.Problems)))
	}
	return fmt.Errorf("verify %s: %d problem(s):\n  %s", r.Source, len(r.Problems)+r.Unlisted, strings.Join(lines, "\n  "))
}

func (r *Report) add(path string, kind Kind, detail string) {
	if r.maxProblems > 0 && len(r.Problems) >= r.maxProblems {
		r.Unlisted++
		return
	}
	r.Problems = append(r.Problems, Problem{Path: path, Kind: kind, Detail: detail})
}

// stop records the problem that ended a verification early (a limit, a
// corrupt stream): it is listed even past Limits.Problems, since it says
// why the rest was not checked.
func (r *Report) stop(path, detail string) {
	r.Problems = append(r.Problems, Problem{Path: path, Kind: Unreadable, Detail: detail})
}

func (r *Report) sort() {
	slices.SortStableFunc(r.Problems, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// PublicKey, if set, must verify MANIFEST.sha256.sig over the run's
	// Statement; a missing or invalid signature is then a problem. Without
	// it a signature present is reported as present and not checked
	// (Report.Signed without Report.SigValid).
	PublicKey ed25519.PublicKey
	// Limits bound what is read; zero fields take DefaultLimits.
	Limits Limits
}

// Verify checks a run folder or a bundle.tar.gz (by path) against its
// manifest: every listed file must exist with the listed hash and nothing
// else may be present; no file is skipped. A folder given through a symlink
// (out/latest) is resolved first, and its run id is the resolved folder's
// name. For a folder that also holds bundle.tar.gz, the bundle is verified
// too (its bytes against bundle.tar.gz.sha256, its contents against its
// manifest, and its manifest, signature and run id against the folder's).
// Every file of a folder is read through an os.Root: no symlink leads
// verify out of the folder, and a named pipe or device is reported, never
// read. Everything is streamed within opts.Limits. The error is for a path that
// cannot be read at all, or ctx done (the verification is then
// incomplete); everything wrong with the evidence itself is in the Report.
func Verify(ctx context.Context, p string, opts VerifyOptions) (*Report, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	lim := opts.Limits.withDefaults()
	r := &Report{Source: p, maxProblems: lim.Problems}
	if st.IsDir() {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		if real != filepath.Clean(p) {
			r.Resolved = real
		}
		verifyDir(ctx, r, real, opts.PublicKey, lim)
	} else if f, err := openRegular(nil, p); err != nil {
		r.stop(filepath.Base(p), err.Error())
	} else {
		verifyBundle(ctx, r, f, filepath.Base(p), "", nil, opts.PublicKey, lim)
		f.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: stopped before the end: %w", p, err)
	}
	r.sort()
	return r, nil
}

// folderEvidence is what a folder's bundle must agree with.
type folderEvidence struct {
	runID, manifestSHA256 string
	sig                   []byte // nil: the folder has no signature
}

func verifyDir(ctx context.Context, r *Report, dir string, pub ed25519.PublicKey, lim Limits) {
	id, err := runIDOf(dir)
	if err != nil {
		r.add(".", Unreadable, err.Error())
		return
	}
	r.RunID = id
	// Every file is read through root: a crafted symlink, in the manifest
	// or in the folder, cannot lead verify out of the run folder.
	root, err := os.OpenRoot(dir)
	if err != nil {
		r.add(".", Unreadable, err.Error())
		return
	}
	defer root.Close()
	entries, manifestSum, err := readManifestFile(root, ManifestName, lim)
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
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		listed[e.Path] = true
		sum, err := hashIn(ctx, root, e.Path)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, fs.ErrNotExist):
			r.add(e.Path, Missing, "")
		case err != nil:
			r.add(e.Path, Unreadable, err.Error())
		case sum != e.SHA256:
			r.add(e.Path, Altered, "sha256 "+sum+", manifest says "+e.SHA256)
		}
	}
	// What is not listed is reported as the walk finds it, so that only
	// the problems (at most lim.Problems) are held, not every name.
	err = walkFolder(ctx, root, lim.Entries, func(f string, typ fs.FileMode) {
		switch {
		case !typ.IsRegular():
			r.add(f, Extra, "not a regular file")
		case isLeftover(f):
			r.add(f, Extra, leftoverDetail)
		case !isEvidence(f) && !listed[f]:
			r.add(f, Extra, "not in "+ManifestName)
		}
	})
	if err != nil {
		r.stop(".", err.Error())
	}
	want := folderEvidence{runID: id, manifestSHA256: manifestSum}
	sig, err := readSmall(root, SignatureName, maxSigBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		r.add(SignatureName, Unreadable, err.Error())
	default:
		want.sig = sig
	}
	checkSignature(r, "", want, pub)

	if _, err := root.Lstat(BundleName); err == nil {
		f, err := openRegular(root, BundleName)
		if err != nil {
			r.stop(BundleName, err.Error())
		} else {
			verifyBundle(ctx, r, f, BundleName, BundleName+": ", &want, pub, lim)
			f.Close()
		}
		checkBundleSum(ctx, r, root, err == nil)
	} else if _, err := root.Lstat(BundleSumName); err == nil {
		r.add(BundleName, Missing, BundleSumName+" lists it")
	}
}

// readSmall reads a regular file under root that must not exceed max
// bytes; past it, it returns max+1 bytes so the caller reports the size as
// wrong.
func readSmall(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := openRegular(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max+1))
}

// checkBundleSum checks bundle.tar.gz.sha256, which must hold exactly the
// line WriteBundle writes, and, if hash is set (the bundle could be
// opened), bundle.tar.gz against it.
func checkBundleSum(ctx context.Context, r *Report, root *os.Root, hash bool) {
	b, err := readSmall(root, BundleSumName, int64(64+2+len(BundleName)+1))
	if errors.Is(err, fs.ErrNotExist) {
		r.add(BundleSumName, Missing, "")
		return
	}
	if err != nil {
		r.add(BundleSumName, Unreadable, err.Error())
		return
	}
	entries, err := ParseManifest(bytes.NewReader(b))
	if err != nil || len(entries) != 1 || entries[0].Path != BundleName || string(b) != entries[0].SHA256+"  "+BundleName+"\n" {
		r.add(BundleSumName, Unreadable, "want one line \"<sha256>  bundle.tar.gz\"")
		return
	}
	if !hash {
		return
	}
	sum, err := hashIn(ctx, root, BundleName)
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

// checkSignature checks the signature of ev (nil sig: none) against pub,
// if one is given. label prefixes problem paths.
func checkSignature(r *Report, label string, ev folderEvidence, pub ed25519.PublicKey) {
	present := ev.sig != nil
	r.Signed = r.Signed || present
	switch {
	case pub == nil && present:
		r.Checked = append(r.Checked, label+SignatureName+": present, NOT checked (no public key given)")
	case pub == nil:
	case !present:
		r.add(label+SignatureName, Missing, "a public key was given, and the run is not signed")
	default:
		if why := sigProblem(pub, ev.runID, ev.manifestSHA256, ev.sig); why != "" {
			r.add(label+SignatureName, BadSig, why)
			return
		}
		r.SigValid = label == "" || r.SigValid
		r.Checked = append(r.Checked, fmt.Sprintf("%s%s: valid ed25519 signature by %s of run %s", label, SignatureName, Fingerprint(pub), ev.runID))
	}
}

// errLimit marks a bundle that goes past a limit.
var errLimit = errors.New("past a limit")

// cappedReader fails with errLimit once more than left bytes are read.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errLimit
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errLimit
	}
	return n, err
}

// listedFile is a manifest entry while its bundle is read.
type listedFile struct {
	sha256 string
	seen   bool
}

// verifyBundle checks a bundle's contents against the manifest it
// carries, reading the bundle f once as a stream: the manifest must come
// first (WriteBundle puts it there), so each later entry is hashed and
// checked as it passes and only the manifest's entries are held. name is
// the bundle's name in problems about the bundle as a whole; label
// prefixes the paths of problems with its entries. If want is set
// (verifying a folder's bundle), the bundle's manifest, signature and run
// id must be the folder's.
func verifyBundle(ctx context.Context, r *Report, f io.Reader, name, label string, want *folderEvidence, pub ed25519.PublicKey, lim Limits) {
	fail := func(format string, args ...any) { r.stop(name, fmt.Sprintf(format, args...)) }
	gz, err := gzip.NewReader(ctxReader{ctx, f})
	if err != nil {
		fail("gzip: %v", err)
		return
	}
	stream := &cappedReader{r: gz, left: lim.TotalBytes}
	tooBig := func(err error) bool {
		if errors.Is(err, errLimit) {
			fail("more than %d bytes uncompressed, the limit: refused", lim.TotalBytes)
			return true
		}
		return false
	}
	tr := tar.NewReader(stream)
	var (
		ev      folderEvidence
		order   []string               // the manifest's paths, in its order
		listed  map[string]*listedFile // nil until the manifest is read
		entries int
	)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !tooBig(err) {
				fail("tar: %v", err)
			}
			return
		}
		if entries++; entries > lim.Entries {
			fail("more than %d entries, the limit: refused", lim.Entries)
			return
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		if len(hdr.Name) > maxNameBytes {
			r.add(label+hdr.Name[:64]+"...", Extra, fmt.Sprintf("a name of %d bytes, longer than %d", len(hdr.Name), maxNameBytes))
			continue
		}
		top, rel, ok := strings.Cut(cleanRel(hdr.Name), "/")
		if !ok || checkName(top) != nil || checkName(rel) != nil {
			r.add(label+hdr.Name, Extra, "not a plain path under the bundle's top-level folder")
			continue
		}
		if ev.runID == "" {
			ev.runID = top
		} else if top != ev.runID {
			r.add(label+hdr.Name, Extra, "outside "+ev.runID+"/, the bundle's top-level folder")
			continue
		}
		if listed == nil {
			if rel != ManifestName || hdr.Typeflag != tar.TypeReg {
				fail("the first file is %s, not %s: mailchaos writes the manifest first; to check a bundle packed otherwise, unpack it and verify the folder", hdr.Name, ManifestName)
				return
			}
			es, sum, err := parseManifest(tr, lim)
			if err != nil {
				if !tooBig(err) {
					r.add(label+ManifestName, Unreadable, err.Error())
				}
				return
			}
			ev.manifestSHA256 = sum
			if label == "" {
				r.RunID = ev.runID
			}
			listed = make(map[string]*listedFile, len(es))
			for _, e := range es {
				listed[e.Path] = &listedFile{sha256: e.SHA256}
				order = append(order, e.Path)
			}
			continue
		}
		if hdr.Size > lim.EntryBytes {
			fail("%s: %d bytes, more than %d, the limit for one file: refused", hdr.Name, hdr.Size, lim.EntryBytes)
			return
		}
		lf := listed[rel]
		switch {
		case rel == ManifestName:
			r.add(label+rel, Extra, "a second copy in the bundle")
		case rel == SignatureName && hdr.Typeflag == tar.TypeReg && ev.sig == nil:
			if ev.sig, err = io.ReadAll(io.LimitReader(tr, maxSigBytes+1)); err != nil {
				if !tooBig(err) {
					fail("tar: %s: %v", hdr.Name, err)
				}
				return
			}
		case rel == SignatureName:
			r.add(label+rel, Extra, "a second copy in the bundle, or not a regular file")
		case lf == nil:
			detail := "not in " + ManifestName
			if hdr.Typeflag != tar.TypeReg {
				detail = "not a regular file, not in " + ManifestName
			}
			r.add(label+rel, Extra, detail)
		case lf.seen:
			r.add(label+rel, Extra, "a second copy in the bundle: unpacking keeps the last one")
		case hdr.Typeflag != tar.TypeReg:
			lf.seen = true
			r.add(label+rel, Altered, fmt.Sprintf("a tar entry of type %q, not a regular file", hdr.Typeflag))
		default:
			lf.seen = true
			h := newHasher()
			if _, err := io.Copy(h, tr); err != nil {
				if ctx.Err() == nil && !tooBig(err) {
					fail("tar: %s: %v", hdr.Name, err)
				}
				return
			}
			if sum := h.hex(); sum != lf.sha256 {
				r.add(label+rel, Altered, "sha256 "+sum+", manifest says "+lf.sha256)
			}
		}
	}
	// The tar reader stops at the end-of-archive blocks; drain the rest so
	// the gzip reader checks the CRC and length of the whole stream, which
	// still counts against the limit.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		if ctx.Err() == nil && !tooBig(err) {
			fail("gzip: %v", err)
		}
		return
	}
	if err := gz.Close(); err != nil {
		fail("gzip: %v", err)
		return
	}
	if listed == nil {
		r.add(label+ManifestName, Missing, "not in the bundle")
		return
	}
	if label == "" {
		r.Files = len(order)
	}
	r.Checked = append(r.Checked, fmt.Sprintf("%s%s: %d files", label, ManifestName, len(order)))
	for _, p := range order {
		if !listed[p].seen {
			r.add(label+p, Missing, "")
		}
	}
	if want != nil {
		if ev.runID != want.runID {
			r.add(BundleName, Altered, "its files are under "+ev.runID+"/, the folder is run "+want.runID)
		}
		if ev.manifestSHA256 != want.manifestSHA256 {
			r.add(ManifestName, Altered, "differs from the copy in "+BundleName)
		}
		switch {
		case want.sig == nil && ev.sig != nil:
			r.add(SignatureName, Missing, "the copy in "+BundleName+" exists")
		case want.sig != nil && ev.sig == nil:
			r.add(label+SignatureName, Missing, "the folder has one")
		case ev.sig != nil && !bytes.Equal(want.sig, ev.sig):
			r.add(SignatureName, Altered, "differs from the copy in "+BundleName)
		}
	}
	checkSignature(r, label, ev, pub)
}

type hasher struct{ hash.Hash }

func newHasher() *hasher      { return &hasher{sha256.New()} }
func (h *hasher) hex() string { return hex.EncodeToString(h.Sum(nil)) }
