package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/mailchaos/mailchaos/reports/evidence"
)

func init() {
	registerMain("keygen", "write an ed25519 key pair to sign run folders (run --sign-key) and check them (verify -pubkey)", keygenMain)
}

// keygenMain writes a fresh key pair into --out. It never overwrites a
// key: losing the private key a team's runs are signed with would leave
// every later signature unverifiable against the public key auditors hold.
func keygenMain(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "folder to write "+evidence.PrivateKeyName+" (private, mode 0600) and "+evidence.PublicKeyName+" into; created with mode 0700 if missing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailchaos keygen --out DIR")
		fmt.Fprintln(stderr, "\nWrites an ed25519 key pair as PEM (PKCS#8 private key, PKIX public key, as OpenSSL writes them).")
		fmt.Fprintln(stderr, "Sign runs with `mailchaos run --sign-key DIR/"+evidence.PrivateKeyName+"`; auditors check them with")
		fmt.Fprintln(stderr, "`mailchaos verify -pubkey DIR/"+evidence.PublicKeyName+" <run folder>`. Existing files are never overwritten.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		fs.Usage()
		return errors.New("--out: give the folder for the key pair, e.g. --out keys")
	}
	priv, pub, key, err := evidence.WriteKeyPair(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key %s (keep it secret): mailchaos run --sign-key %s\n", priv, priv)
	fmt.Fprintf(stdout, "public key  %s (give it to auditors): mailchaos verify -pubkey %s <run folder>\n", pub, pub)
	fmt.Fprintf(stdout, "fingerprint %s\n", evidence.Fingerprint(key))
	return nil
}
