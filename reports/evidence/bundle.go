package evidence

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// BundleTime is the modification time of every entry of a bundle. A bundle
// is a function of the folder's contents only: the same artifacts give the
// same bytes, whoever builds them and whenever.
var BundleTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// WriteBundle writes dir/bundle.tar.gz from dir's manifest: the manifest
// first, then its signature if there is one, then every listed file in
// manifest order, all under one top-level folder named after dir (the run
// id, the name of the folder dir resolves to). Entries are owned by uid/gid 0 with mode 0644 and BundleTime, so the
// bundle is deterministic. It also writes dir/bundle.tar.gz.sha256. The
// files are hashed again while they are archived; a file that changed since
// the manifest was written is an error.
func WriteBundle(dir string) error {
	entries, _, err := readManifestFile(nil, filepath.Join(dir, ManifestName), DefaultLimits)
	if err != nil {
		return fmt.Errorf("write bundle: read manifest: %w", err)
	}
	prefix, err := runIDOf(dir)
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	final := filepath.Join(dir, BundleName)
	tmp, err := os.CreateTemp(dir, BundleName+".tmp*")
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	defer os.Remove(tmp.Name())

	gz, err := gzip.NewWriterLevel(tmp, gzip.BestCompression)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("write bundle: %w", err)
	}
	tw := tar.NewWriter(gz)
	add := func(rel, want string) error {
		return addFile(tw, dir, prefix, rel, want)
	}
	err = add(ManifestName, "")
	if err == nil {
		if _, serr := os.Stat(filepath.Join(dir, SignatureName)); serr == nil {
			err = add(SignatureName, "")
		} else if !errors.Is(serr, fs.ErrNotExist) {
			err = serr
		}
	}
	for _, e := range entries {
		if err != nil {
			break
		}
		err = add(e.Path, e.SHA256)
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	sum, err := HashFile(context.Background(), final)
	if err != nil {
		return fmt.Errorf("write bundle: hash: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, BundleSumName), fmt.Appendf(nil, "%s  %s\n", sum, BundleName), 0o644); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

// addFile archives dir/rel as prefix/rel; if want is set, the bytes
// archived must hash to it.
func addFile(tw *tar.Writer, dir, prefix, rel, want string) error {
	f, err := openRegular(nil, filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     prefix + "/" + rel,
		Size:     st.Size(),
		Mode:     0o644,
		ModTime:  BundleTime,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	h := newHasher()
	n, err := io.Copy(io.MultiWriter(tw, h), f)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if n != st.Size() {
		return fmt.Errorf("%s: changed size while archived", rel)
	}
	if want != "" && h.hex() != want {
		return fmt.Errorf("%s: changed since the manifest was written", rel)
	}
	return nil
}
