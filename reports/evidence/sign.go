package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Sign signs dir/MANIFEST.sha256 with key and writes the raw 64-byte ed25519
// signature to dir/MANIFEST.sha256.sig. The raw form is what OpenSSL 3
// verifies directly:
//
//	openssl pkeyutl -verify -pubin -inkey pub.pem -rawin \
//	    -in MANIFEST.sha256 -sigfile MANIFEST.sha256.sig
func Sign(dir string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign manifest: not an ed25519 private key")
	}
	manifest, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	sig := ed25519.Sign(key, manifest)
	if err := writeFileAtomic(filepath.Join(dir, SignatureName), sig, 0o644); err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	return nil
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
