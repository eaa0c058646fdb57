package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A descriptor is input that may come from anyone who can open a pull
// request against a stack's repository, and its files are copied into
// containers whose logs end up in a report. So a files.source may only
// name a regular file inside the descriptor's folder or, for an overlay,
// inside the folder of a descriptor it is based on (an overlay reuses its
// base's configs: ../../reference/images/mta/main.cf): not an absolute
// path elsewhere, not a way out with "..", and not a symlink that leads
// out, which is checked after resolving every link of the path.

// sourceRoots returns the folders d's file sources may come from.
func (d *Descriptor) sourceRoots() []string {
	if len(d.roots) > 0 {
		return d.roots
	}
	// A descriptor built in memory, not by Parse.
	abs, err := filepath.Abs(d.Dir)
	if err != nil {
		return []string{d.Dir}
	}
	return []string{abs}
}

// sourcePath returns the file the source src names, with every symlink
// resolved, or an error saying why it may not be read and how to fix it.
func (d *Descriptor) sourcePath(src string) (string, error) {
	p := src
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.Dir, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src, err)
	}
	roots := d.sourceRoots()
	// Checked on the path as written first, so that a source outside the
	// folder is refused without telling whether that file exists.
	if !insideAny(abs, roots) {
		return "", fmt.Errorf("source %s is outside %s: copy the file into that folder and name it relative to the descriptor", src, folders(roots))
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("source %s is missing (sources are relative to the descriptor's folder)", p)
	}
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src, err)
	}
	realRoots := make([]string, len(roots))
	for i, r := range roots {
		if realRoots[i], err = filepath.EvalSymlinks(r); err != nil {
			realRoots[i] = r
		}
	}
	if !insideAny(real, realRoots) {
		return "", fmt.Errorf("source %s leads through a symlink to %s, outside %s: copy the file into the folder instead of linking to it", src, real, folders(roots))
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src, err)
	}
	switch {
	case st.IsDir():
		return "", fmt.Errorf("source %s is a folder: name a file in it", src)
	case !st.Mode().IsRegular():
		// A named pipe would block the reader for ever, a device might never end.
		return "", fmt.Errorf("source %s is not a regular file (mode %s): name a regular file", src, st.Mode())
	}
	return real, nil
}

// readSource reads the file the source src names (see sourcePath).
func (d *Descriptor) readSource(src string) ([]byte, error) {
	p, err := d.sourcePath(src)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", src, err)
	}
	return b, nil
}

// insideAny reports whether the absolute path p is one of roots or below one.
func insideAny(p string, roots []string) bool {
	for _, r := range roots {
		rel, err := filepath.Rel(r, p)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			return true
		}
	}
	return false
}

// folders names the roots in a message.
func folders(roots []string) string {
	if len(roots) == 1 {
		return "the descriptor's folder " + roots[0]
	}
	return "the folders of the descriptor and its bases (" + strings.Join(roots, ", ") + ")"
}
