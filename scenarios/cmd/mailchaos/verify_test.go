package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailchaos/mailchaos/reports/evidence"
)

func TestVerifyCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run-1")
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	os.WriteFile(filepath.Join(dir, "verdict.json"), []byte("{}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "logs", "edge.log"), []byte("up\n"), 0o644)
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	pub := filepath.Join(t.TempDir(), "pub.hex")
	os.WriteFile(pub, []byte(hex.EncodeToString(key.Public().(ed25519.PublicKey))), 0o644)
	if _, err := evidence.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	if err := evidence.Sign(dir, key); err != nil {
		t.Fatal(err)
	}
	if err := evidence.WriteBundle(dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"verify", dir}, {"verify", "-pubkey", pub, dir}, {"verify", "-pubkey", pub, filepath.Join(dir, evidence.BundleName)}} {
		out.Reset()
		errb.Reset()
		if code := run(ctx, args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, errb.String())
		}
	}
	os.WriteFile(filepath.Join(dir, "logs", "edge.log"), []byte("uP\n"), 0o644)
	errb.Reset()
	if code := run(ctx, []string{"verify", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "logs/edge.log: altered") {
		t.Fatalf("altered file: exit %d\n%s", code, errb.String())
	}
	if code := run(ctx, []string{"verify", filepath.Join(dir, "nope")}, &out, &errb); code != 2 {
		t.Fatalf("missing path: exit %d", code)
	}
}
