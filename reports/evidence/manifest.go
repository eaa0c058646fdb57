// Package evidence makes a run folder auditable: a SHA-256 manifest of every
// artifact in the format `sha256sum -c` reads, a deterministic
// bundle.tar.gz holding all of it, an optional ed25519 signature of the
// manifest, and Verify, which re-hashes a folder or a bundle and names every
// altered, missing or extra file.
//
// An auditor needs nothing from mailchaos to check a bundle: GNU sha256sum
// checks the manifest and OpenSSL checks the signature. This package only
// does the same, with better messages. It knows nothing of what the
// artifacts mean; it does not read histories or verdicts.
package evidence

import (
	"bufio"
	"bytes"
	"crypto/sha256"
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

// maxManifestBytes bounds how much of a manifest is read: a run folder has
// hundreds of files, not millions.
const maxManifestBytes = 64 << 20

// Entry is one line of a manifest: a file's path relative to the run folder
// (slash-separated) and its SHA-256 in lower-case hex.
type Entry struct {
	Path   string
	SHA256 string
}

// isEvidence reports whether the relative path names one of the evidence
// files, which are never listed in the manifest.
func isEvidence(rel string) bool {
	switch rel {
	case ManifestName, SignatureName, BundleName, BundleSumName:
		return true
	}
	return strings.HasPrefix(rel, BundleName+".tmp")
}

// checkName rejects paths that sha256sum would have to escape or that could
// leave the folder: an auditor's tools must read the manifest as written.
func checkName(rel string) error {
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

// HashFile returns the hex SHA-256 of the file at p.
func HashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// listFiles returns the relative paths of the artifacts in dir, sorted
// bytewise, and the relative paths of anything that is neither a regular
// file nor a directory (symlinks, devices), which cannot be evidence.
func listFiles(dir string) (files, odd []string, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			if !isEvidence(rel) {
				files = append(files, rel)
			}
		default:
			odd = append(odd, rel)
		}
		return nil
	})
	slices.Sort(files)
	slices.Sort(odd)
	return files, odd, err
}

// Hash hashes every artifact in dir (every regular file except the evidence
// files) and returns the entries sorted by path. A symlink or other
// non-regular file, or a name sha256sum would have to escape, is an error.
func Hash(dir string) ([]Entry, error) {
	files, odd, err := listFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	if len(odd) > 0 {
		return nil, fmt.Errorf("list artifacts: not regular files: %s", strings.Join(odd, ", "))
	}
	entries := make([]Entry, 0, len(files))
	for _, rel := range files {
		if err := checkName(rel); err != nil {
			return nil, fmt.Errorf("list artifacts: %w", err)
		}
		sum, err := HashFile(filepath.Join(dir, filepath.FromSlash(rel)))
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
// is absolute, climbs out with "..", or appears twice.
func ParseManifest(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var entries []Entry
	seen := map[string]bool{}
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSuffix(sc.Text(), "\r")
		if s == "" {
			continue
		}
		if len(s) < 64+2 || (s[64:66] != "  " && s[64:66] != " *") {
			return nil, fmt.Errorf("manifest line %d: not \"<sha256>  <path>\"", line)
		}
		sum := s[:64]
		if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
			return nil, fmt.Errorf("manifest line %d: %q is not a lower-case hex SHA-256", line, sum)
		}
		p := s[66:]
		if err := checkName(p); err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", line, err)
		}
		if seen[p] {
			return nil, fmt.Errorf("manifest line %d: %s listed twice", line, p)
		}
		seen[p] = true
		entries = append(entries, Entry{Path: p, SHA256: sum})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest line %d: %w", line+1, err)
	}
	return entries, nil
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
	if err := writeFileAtomic(filepath.Join(dir, ManifestName), buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, SignatureName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("write manifest: remove stale signature: %w", err)
	}
	return entries, nil
}

// readManifestFile reads and parses dir's manifest, returning its bytes too.
func readManifestFile(p string) ([]byte, []Entry, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxManifestBytes {
		return nil, nil, fmt.Errorf("larger than %d bytes", maxManifestBytes)
	}
	entries, err := ParseManifest(bytes.NewReader(b))
	return b, entries, err
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
