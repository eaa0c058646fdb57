package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// StatementHeader is the first line of the statement a run's signature
// signs; the version changes if the statement's form ever does.
const StatementHeader = "mailchaos-manifest v1"

// Statement returns the bytes a run's signature signs: three lines that
// name the form, the run id, and the SHA-256 of MANIFEST.sha256's bytes:
//
//	mailchaos-manifest v1
//	run <run id>
//	sha256 <hex SHA-256 of MANIFEST.sha256>
//
// Signing the manifest alone would let a signature move between runs
// whose manifests match; the statement binds it to one run. The run id is
// the name of the run folder, which is also the bundle's top-level folder.
// An auditor rebuilds the statement with printf and sha256sum (see the
// README) and checks it with OpenSSL.
func Statement(runID, manifestSHA256 string) []byte {
	return fmt.Appendf(nil, "%s\nrun %s\nsha256 %s\n", StatementHeader, runID, manifestSHA256)
}

// CheckCommands returns the two shell lines with which an auditor checks a
// run's signature using only printf, sha256sum and OpenSSL 3, run in the
// run folder: rebuild the Statement into the file statement (outside the
// run folder, or verify would find it extra; OpenSSL 3.0 cannot verify
// ed25519 from a pipe), then verify MANIFEST.sha256.sig over it with the
// public key pubKey. runID is put in as given, so a shell expression such
// as "$(basename "$PWD")" works too. The README and index.html show these
// lines; the tests run them.
func CheckCommands(runID, pubKey, statement string) string {
	const lines = `printf '%s\nrun %%s\nsha256 %%s\n' %s "$(sha256sum < %s | cut -d' ' -f1)" > %s
openssl pkeyutl -verify -pubin -inkey %s -rawin -in %s -sigfile %s`
	return fmt.Sprintf(lines, StatementHeader, runID, ManifestName, statement, pubKey, statement, SignatureName)
}

// Sign signs the Statement of dir (its run id, the name of the folder it
// resolves to, and the hash of dir/MANIFEST.sha256) with key and writes the
// raw 64-byte ed25519 signature to dir/MANIFEST.sha256.sig. The raw form is
// what OpenSSL 3 verifies directly (see CheckCommands).
func Sign(dir string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign manifest: not an ed25519 private key")
	}
	id, err := runIDOf(dir)
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	sum, err := HashFile(context.Background(), filepath.Join(dir, ManifestName))
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	sig := ed25519.Sign(key, Statement(id, sum))
	if err := writeFileAtomic(filepath.Join(dir, SignatureName), sig, 0o644); err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	return nil
}

// sigProblem returns "" when sig is pub's signature of the Statement of
// runID and manifestSHA256, and otherwise why not.
func sigProblem(pub ed25519.PublicKey, runID, manifestSHA256 string, sig []byte) string {
	if len(sig) != ed25519.SignatureSize {
		return fmt.Sprintf("%d bytes, an ed25519 signature has %d", len(sig), ed25519.SignatureSize)
	}
	if ed25519.Verify(pub, Statement(runID, manifestSHA256), sig) {
		return ""
	}
	return fmt.Sprintf("not a signature by key %s of run %s with %s sha256 %s: it was made by another key, for another run, or over another manifest",
		Fingerprint(pub), runID, ManifestName, manifestSHA256)
}

// Fingerprint returns the SHA-256 fingerprint of an ed25519 public key as
// OpenSSH prints it (`ssh-keygen -lf`), "SHA256:<base64>", so that a key
// can be named in output and compared by eye.
func Fingerprint(pub ed25519.PublicKey) string {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Sprintf("(not an ed25519 key: %v)", err)
	}
	return ssh.FingerprintSHA256(k)
}

// File names WriteKeyPair writes.
const (
	PrivateKeyName = "sign-key.pem"
	PublicKeyName  = "sign-pub.pem"
)

// WriteKeyPair generates an ed25519 key pair and writes it into dir
// (created 0700 if missing): the private key as PEM "PRIVATE KEY" (PKCS#8,
// what OpenSSL writes) in sign-key.pem with mode 0600, the public key as
// PEM "PUBLIC KEY" (PKIX) in sign-pub.pem with mode 0644. It never
// overwrites: an existing file of either name is an error. It returns the
// two paths and the public key.
func WriteKeyPair(dir string) (privPath, pubPath string, pub ed25519.PublicKey, err error) {
	privPath, pubPath = filepath.Join(dir, PrivateKeyName), filepath.Join(dir, PublicKeyName)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", nil, fmt.Errorf("write key pair: %s exists; remove it or choose another folder", p)
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", nil, fmt.Errorf("write key pair: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", nil, fmt.Errorf("write key pair: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", "", nil, fmt.Errorf("write key pair: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", nil, fmt.Errorf("write key pair: %w", err)
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return "", "", nil, fmt.Errorf("write key pair: %w", err)
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath) // half a pair is no use
		return "", "", nil, fmt.Errorf("write key pair: %w", err)
	}
	return privPath, pubPath, pub, nil
}

// writeNew writes a file that must not exist yet, with mode set from the
// start (O_EXCL), so a private key is never readable by others, not even
// for a moment, and never replaces a key someone relies on.
func writeNew(p string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode) // whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
	}
	return err
}

// ParsePrivateKey parses an ed25519 private key in one of these formats:
//
//   - PEM "PRIVATE KEY" (PKCS#8), as written by
//     `openssl genpkey -algorithm ed25519 -out key.pem`;
//   - PEM "OPENSSH PRIVATE KEY" without a passphrase, as written by
//     `ssh-keygen -t ed25519 -N "" -f key`;
//   - the 32-byte seed or 64-byte private key, in hex or base64, on one line.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			if ek, ok := k.(ed25519.PrivateKey); ok {
				return ek, nil
			}
			return nil, fmt.Errorf("parse private key: PKCS#8 key is %T, not ed25519", k)
		case "OPENSSH PRIVATE KEY":
			k, err := ssh.ParseRawPrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("parse private key: %w", err)
			}
			if ek, ok := k.(*ed25519.PrivateKey); ok {
				return *ek, nil
			}
			return nil, fmt.Errorf("parse private key: OpenSSH key is %T, not ed25519", k)
		default:
			return nil, fmt.Errorf("parse private key: PEM block %q is not PRIVATE KEY or OPENSSH PRIVATE KEY", blk.Type)
		}
	}
	raw, err := decodeRaw(b)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(raw), nil
	}
	return nil, fmt.Errorf("parse private key: %d raw bytes, want a 32-byte seed or a 64-byte key", len(raw))
}

// ParsePublicKey parses an ed25519 public key in one of these formats:
//
//   - PEM "PUBLIC KEY" (PKIX), as written by
//     `openssl pkey -in key.pem -pubout -out pub.pem`;
//   - an OpenSSH public key line "ssh-ed25519 AAAA... comment" (key.pub);
//   - the 32-byte key in hex or base64 on one line.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("parse public key: PEM block %q is not PUBLIC KEY", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		if ek, ok := k.(ed25519.PublicKey); ok {
			return ek, nil
		}
		return nil, fmt.Errorf("parse public key: PKIX key is %T, not ed25519", k)
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("ssh-")) {
		pk, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		cpk, ok := pk.(ssh.CryptoPublicKey)
		if !ok {
			return nil, fmt.Errorf("parse public key: OpenSSH key type %s is not usable", pk.Type())
		}
		if ek, ok := cpk.CryptoPublicKey().(ed25519.PublicKey); ok {
			return ek, nil
		}
		return nil, fmt.Errorf("parse public key: OpenSSH key type %s is not ed25519", pk.Type())
	}
	raw, err := decodeRaw(b)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("parse public key: %d raw bytes, want 32", len(raw))
	}
	return ed25519.PublicKey(raw), nil
}

// LoadPrivateKey reads a private key file in a format ParsePrivateKey reads.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a public key file in a format ParsePublicKey reads.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// decodeRaw decodes one line of hex or standard base64.
func decodeRaw(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("empty key")
	}
	if raw, err := hex.DecodeString(s); err == nil {
		return raw, nil
	}
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
		return raw, nil
	}
	return nil, fmt.Errorf("not PEM, OpenSSH, hex or base64")
}
