// Package evidence makes a run folder auditable: a SHA-256 manifest of every
// artifact in the format `sha256sum -c` reads, a deterministic
// bundle.tar.gz holding all of it, an optional ed25519 signature of a short
// statement binding the run id to the manifest's hash (see Statement), and
// Verify, which re-hashes a folder or a bundle within fixed limits (see
// Limits) and names every altered, missing or extra file.
//
// An auditor needs nothing from mailchaos to check a bundle: GNU sha256sum
// checks the manifest and OpenSSL checks the signature. This package only
// does the same, with better messages. It knows nothing of what the
// artifacts mean; it does not read histories or verdicts.
package evidence

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// File names of the evidence in a run folder. None of them is listed in the
// manifest: the manifest cannot hash itself, the signature signs it, and the
// bundle contains it.
const (
	ManifestName  = "MANIFEST.sha256"
	SignatureName = "MANIFEST.sha256.sig"
	BundleName    = "bundle.tar.gz"
	// BundleSumName holds the SHA-256 of bundle.tar.gz in sha256sum format,
	// so that a change to the bundle's bytes outside its compressed payload
	// (the gzip header) is caught too.
	BundleSumName = "bundle.tar.gz.sha256"
)

// maxNameBytes bounds a file's path (PATH_MAX on Linux): no real artifact
// has a longer one, and a crafted bundle cannot make Verify hold megabytes
// per name.
const maxNameBytes = 4096

// maxSigBytes bounds how much of a signature file is read: an ed25519
// signature has 64 bytes; anything longer is reported by its size.
const maxSigBytes = 1024

// Entry is one line of a manifest: a file's path relative to the run folder
// (slash-separated) and its SHA-256 in lower-case hex.
type Entry struct {
	Path   string
	SHA256 string
}

// evidenceNames are the evidence files of a run folder, checked by Verify
// itself and never listed in the manifest.
var evidenceNames = []string{ManifestName, SignatureName, BundleName, BundleSumName}

// isEvidence reports whether the relative path names one of the evidence
// files.
func isEvidence(rel string) bool { return slices.Contains(evidenceNames, rel) }

// isLeftover reports whether the relative path is a temporary file an
// interrupted write of the evidence left behind: bundle.tar.gz.tmp* from
// WriteBundle, .<name>.tmp* from writeFileAtomic. Such a file is no
// artifact: WriteManifest refuses it (RemoveStale clears it) and Verify
// reports it as extra, never skipping it.
func isLeftover(rel string) bool {
	if strings.HasPrefix(rel, BundleName+".tmp") {
		return true
	}
	for _, n := range evidenceNames {
		if strings.HasPrefix(rel, "."+n+".tmp") {
			return true
		}
	}
	return false
}

// leftoverDetail says what a leftover is and what to do about it.
const leftoverDetail = "a temporary file of an interrupted evidence write, not in " + ManifestName + "; remove it"

// RemoveStale removes the evidence files of dir and the leftovers of an
// interrupted earlier write, so that a new manifest lists only artifacts.
func RemoveStale(dir string) error {
	var stale []string
	for _, n := range evidenceNames {
		stale = append(stale, filepath.Join(dir, n))
		tmps, err := filepath.Glob(filepath.Join(dir, "."+n+".tmp*"))
		if err != nil {
			return fmt.Errorf("remove stale evidence: %w", err)
		}
		stale = append(stale, tmps...)
	}
	tmps, err := filepath.Glob(filepath.Join(dir, BundleName+".tmp*"))
	if err != nil {
		return fmt.Errorf("remove stale evidence: %w", err)
	}
	for _, p := range append(stale, tmps...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale evidence: %w", err)
		}
	}
	return nil
}

// runIDOf returns the run id of a run folder: the name of the folder a
// path resolves to, so that out/latest gives the run it points at. The run
// id is what a bundle's entries sit under and what a signature binds.
func runIDOf(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(real)
	if err != nil {
		return "", err
	}
	id := filepath.Base(abs)
	if err := checkName(id); err != nil || id == string(filepath.Separator) {
		return "", fmt.Errorf("folder name %q cannot be a run id", id)
	}
	return id, nil
}

// checkName rejects paths that sha256sum would have to escape or that could
// leave the folder: an auditor's tools must read the manifest as written.
func checkName(rel string) error {
	if len(rel) > maxNameBytes {
		return fmt.Errorf("%q...: longer than %d bytes", rel[:64], maxNameBytes)
	}
	if rel == "" || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%q: not a relative path", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("%q: empty, . or .. path element", rel)
		}
	}
	for _, r := range rel {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%q: control character or backslash in file name", rel)
		}
	}
	return nil
}

// HashFile returns the hex SHA-256 of the file at p. It stops with ctx's
// error when ctx is done.
func HashFile(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := newHasher()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", err
	}
	return h.hex(), nil
}

// ctxReader fails its reads once ctx is done, so that hashing a large file
// stops on Ctrl-C.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// folderFiles is what listFiles finds in a run folder, each list sorted
// bytewise.
type folderFiles struct {
	files     []string // regular files other than the evidence files: the artifacts
	odd       []string // neither regular file nor folder (symlinks, devices): never evidence
	leftovers []string // temporary files of an interrupted evidence write (isLeftover)
}

// listFiles walks dir (not following symlinks) and sorts what it finds.
// More than max files, or ctx done, stops it with an error: a folder
// crafted with millions of files cannot make it hold millions of names.
func listFiles(ctx context.Context, dir string, max int) (folderFiles, error) {
	var ff folderFiles
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." || d.IsDir() {
			return nil
		}
		if n++; n > max {
			return fmt.Errorf("more than %d files, the limit: not a run folder", max)
		}
		switch {
		case !d.Type().IsRegular():
			ff.odd = append(ff.odd, rel)
		case isLeftover(rel):
			ff.leftovers = append(ff.leftovers, rel)
		case !isEvidence(rel):
			ff.files = append(ff.files, rel)
		}
		return nil
	})
	slices.Sort(ff.files)
	slices.Sort(ff.odd)
	slices.Sort(ff.leftovers)
	return ff, err
}

// Hash hashes every artifact in dir (every regular file except the evidence
// files) and returns the entries sorted by path. A symlink or other
// non-regular file, a leftover of an interrupted evidence write, a name
// sha256sum would have to escape, or more files than Verify accepts
// (DefaultLimits.Entries), is an error.
func Hash(dir string) ([]Entry, error) {
	ctx := context.Background() // writing a report is not interruptible half-way
	ff, err := listFiles(ctx, dir, DefaultLimits.Entries)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	if len(ff.odd) > 0 {
		return nil, fmt.Errorf("list artifacts: not regular files: %s", strings.Join(ff.odd, ", "))
	}
	if len(ff.leftovers) > 0 {
		return nil, fmt.Errorf("list artifacts: %s: %s (RemoveStale does)", strings.Join(ff.leftovers, ", "), leftoverDetail)
	}
	entries := make([]Entry, 0, len(ff.files))
	for _, rel := range ff.files {
		if err := checkName(rel); err != nil {
			return nil, fmt.Errorf("list artifacts: %w", err)
		}
		sum, err := HashFile(ctx, filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", rel, err)
		}
		entries = append(entries, Entry{Path: rel, SHA256: sum})
	}
	return entries, nil
}

// FormatManifest writes entries in the text format of GNU sha256sum:
// "<hex>  <path>\n" per file.
func FormatManifest(w io.Writer, entries []Entry) error {
	bw := bufio.NewWriter(w)
	for _, e := range entries {
		if err := checkName(e.Path); err != nil {
			return fmt.Errorf("format manifest: %w", err)
		}
		fmt.Fprintf(bw, "%s  %s\n", e.SHA256, e.Path)
	}
	return bw.Flush()
}

// ParseManifest reads a manifest in sha256sum format (text "  " or binary
// " *" separator). A malformed line is an error naming it; so is a path that
// is absolute, climbs out with "..", or appears twice, and a manifest past
// DefaultLimits (bytes or lines).
func ParseManifest(r io.Reader) ([]Entry, error) {
	entries, _, err := parseManifest(r, DefaultLimits)
	return entries, err
}

// parseManifest reads a manifest as a stream within lim and returns its
// entries and the hex SHA-256 of its bytes (what a signature binds), so a
// manifest is never held whole in memory.
func parseManifest(r io.Reader, lim Limits) ([]Entry, string, error) {
	h := newHasher()
	cr := &countingReader{r: io.TeeReader(io.LimitReader(r, lim.ManifestBytes+1), h)}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 4096), 64+2+maxNameBytes+2)
	var entries []Entry
	seen := map[string]bool{}
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSuffix(sc.Text(), "\r")
		if s == "" {
			continue
		}
		if len(entries) == lim.Entries {
			return nil, "", fmt.Errorf("manifest line %d: more than %d files listed, the limit", line, lim.Entries)
		}
		if len(s) < 64+2 || (s[64:66] != "  " && s[64:66] != " *") {
			return nil, "", fmt.Errorf("manifest line %d: not \"<sha256>  <path>\"", line)
		}
		sum := s[:64]
		if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
			return nil, "", fmt.Errorf("manifest line %d: %q is not a lower-case hex SHA-256", line, sum)
		}
		p := s[66:]
		if err := checkName(p); err != nil {
			return nil, "", fmt.Errorf("manifest line %d: %w", line, err)
		}
		if seen[p] {
			return nil, "", fmt.Errorf("manifest line %d: %s listed twice", line, p)
		}
		seen[p] = true
		entries = append(entries, Entry{Path: p, SHA256: sum})
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("manifest line %d: %w", line+1, err)
	}
	if cr.n > lim.ManifestBytes {
		return nil, "", fmt.Errorf("manifest larger than %d bytes, the limit", lim.ManifestBytes)
	}
	return entries, h.hex(), nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// WriteManifest hashes every artifact in dir and writes dir/MANIFEST.sha256.
// It removes a signature left from an earlier manifest, which would no
// longer match. It returns the entries written.
func WriteManifest(dir string) ([]Entry, error) {
	entries, err := Hash(dir)
	if err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	var buf bytes.Buffer
	if err := FormatManifest(&buf, entries); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > DefaultLimits.ManifestBytes {
		return nil, fmt.Errorf("write manifest: %d bytes, more than Verify accepts (%d)", buf.Len(), DefaultLimits.ManifestBytes)
	}
	if err := writeFileAtomic(filepath.Join(dir, ManifestName), buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, SignatureName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("write manifest: remove stale signature: %w", err)
	}
	return entries, nil
}

// readManifestFile reads and parses a manifest file within lim, returning
// the hex SHA-256 of its bytes too.
func readManifestFile(p string, lim Limits) ([]Entry, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	return parseManifest(f, lim)
}

// writeFileAtomic writes data to a temporary file beside p and renames it
// into place, so a reader never sees half a file.
func writeFileAtomic(p string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// cleanRel joins a bundle-relative name into a slash path without "..".
func cleanRel(name string) string { return path.Clean(strings.TrimPrefix(name, "./")) }
