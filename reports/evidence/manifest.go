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
	"syscall"
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

// HashFile returns the hex SHA-256 of the regular file at p; anything else
// (a named pipe, a device) is an error. It stops with ctx's error when ctx
// is done.
func HashFile(ctx context.Context, p string) (string, error) {
	return hashIn(ctx, nil, p)
}

// hashIn is HashFile of name under root (the path name when root is nil).
func hashIn(ctx context.Context, root *os.Root, name string) (string, error) {
	f, err := openRegular(root, name)
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

// errNotRegular marks a path that is no regular file.
var errNotRegular = errors.New("not a regular file")

// openRegular opens name under root for reading (the path name when root
// is nil) and refuses anything but a regular file. Through root, no path
// and no symlink can lead out of the run folder. O_NONBLOCK keeps the open
// of a named pipe from waiting for a writer for ever (it changes nothing
// for a regular file); a device is refused before it is read.
func openRegular(root *os.Root, name string) (*os.File, error) {
	const flag = os.O_RDONLY | syscall.O_NONBLOCK
	var (
		f   *os.File
		err error
	)
	if root != nil {
		f, err = root.OpenFile(name, flag, 0)
	} else {
		f, err = os.OpenFile(name, flag, 0)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w (%s)", name, errNotRegular, typeName(st.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// typeName names a file type for a message.
func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.Type().String()
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

// listFiles walks the folder of root and sorts what it finds (walkFolder).
func listFiles(ctx context.Context, root *os.Root, max int) (folderFiles, error) {
	var ff folderFiles
	err := walkFolder(ctx, root, max, func(rel string, typ fs.FileMode) {
		switch {
		case !typ.IsRegular():
			ff.odd = append(ff.odd, rel)
		case isLeftover(rel):
			ff.leftovers = append(ff.leftovers, rel)
		case !isEvidence(rel):
			ff.files = append(ff.files, rel)
		}
	})
	slices.Sort(ff.files)
	slices.Sort(ff.odd)
	slices.Sort(ff.leftovers)
	return ff, err
}

// dirEntry is what walkFolder keeps of a folder entry until it is visited.
type dirEntry struct {
	name string
	typ  fs.FileMode
}

// walkFolder calls visit with the slash path and type of everything in
// root's folder but folders, which it enters; it follows no symlink. More
// than max entries (files and folders alike), a path longer than
// maxNameBytes, or ctx done, stops it with an error. It reads each folder
// in batches and holds the names of the folders it is in only: a folder
// crafted with millions of entries, or nested deep, makes it hold no more
// than max names of at most a file name's length each.
func walkFolder(ctx context.Context, root *os.Root, max int, visit func(rel string, typ fs.FileMode)) error {
	n := 0
	var walk func(dir string) error
	walk = func(dir string) error {
		d, err := root.Open(dir)
		if err != nil {
			return err
		}
		var entries []dirEntry
		for {
			batch, err := d.ReadDir(256)
			for _, e := range batch {
				if n++; n > max {
					d.Close()
					return fmt.Errorf("more than %d files and folders, the limit: not a run folder", max)
				}
				entries = append(entries, dirEntry{e.Name(), e.Type()})
			}
			if err == io.EOF || (err == nil && len(batch) == 0) {
				break
			}
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				d.Close()
				return err
			}
		}
		d.Close()
		slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			rel := e.name
			if dir != "." {
				rel = dir + "/" + e.name
			}
			if len(rel) > maxNameBytes {
				return fmt.Errorf("%q...: a path longer than %d bytes, the limit: not a run folder", rel[:64], maxNameBytes)
			}
			if e.typ.IsDir() {
				if err := walk(rel); err != nil {
					return err
				}
				continue
			}
			visit(rel, e.typ)
		}
		return nil
	}
	return walk(".")
}

// Hash hashes every artifact in dir (every regular file except the evidence
// files) and returns the entries sorted by path. A symlink or other
// non-regular file, a leftover of an interrupted evidence write, a name
// sha256sum would have to escape, or more files than Verify accepts
// (DefaultLimits.Entries), is an error.
func Hash(dir string) ([]Entry, error) {
	ctx := context.Background() // writing a report is not interruptible half-way
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	defer root.Close()
	ff, err := listFiles(ctx, root, DefaultLimits.Entries)
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
		sum, err := hashIn(ctx, root, rel)
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
// " *" separator), each line ending in "\n" alone, as FormatManifest
// writes it. A malformed line is an error naming it; so is an empty line,
// a carriage return, a last line without its newline (a manifest cut
// short), a path that is absolute, climbs out with "..", or appears twice,
// and a manifest past DefaultLimits (bytes or lines).
func ParseManifest(r io.Reader) ([]Entry, error) {
	entries, _, err := parseManifest(r, DefaultLimits)
	return entries, err
}

// errCutShort is a manifest whose last line has no newline.
var errCutShort = errors.New("no newline at the end of the last line: the manifest was cut short")

// scanManifestLines splits at "\n" alone. Unlike bufio.ScanLines it keeps
// a "\r" for parseManifest to refuse (GNU sha256sum drops one "\r" before
// the newline and keeps a second as part of the name, so a lenient reader
// and sha256sum would disagree on which file a line names), and it refuses
// a last line without its newline.
func scanManifestLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errCutShort
	}
	return 0, nil, nil
}

// parseManifest reads a manifest as a stream within lim and returns its
// entries and the hex SHA-256 of its bytes (what a signature binds), so a
// manifest is never held whole in memory.
func parseManifest(r io.Reader, lim Limits) ([]Entry, string, error) {
	h := newHasher()
	cr := &countingReader{r: io.TeeReader(io.LimitReader(r, lim.ManifestBytes+1), h)}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 4096), 64+2+maxNameBytes+1)
	sc.Split(scanManifestLines)
	var entries []Entry
	seen := map[string]bool{}
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		switch {
		case strings.HasSuffix(s, "\r"):
			return nil, "", fmt.Errorf("manifest line %d: ends in a carriage return (\\r): lines end in \\n alone, as mailchaos writes them", line)
		case s == "":
			return nil, "", fmt.Errorf("manifest line %d: empty", line)
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
	// Past the byte limit the stream was cut: that, not the cut line, is
	// what is wrong.
	if cr.n > lim.ManifestBytes {
		return nil, "", fmt.Errorf("manifest larger than %d bytes, the limit", lim.ManifestBytes)
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("manifest line %d: %w", line+1, err)
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

// readManifestFile reads and parses the manifest file name under root
// (the path name when root is nil) within lim, returning the hex SHA-256
// of its bytes too.
func readManifestFile(root *os.Root, name string, lim Limits) ([]Entry, string, error) {
	f, err := openRegular(root, name)
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
