package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mailchaos/mailchaos/reports/evidence"
)

func init() {
	register("verify", "check a run folder or bundle.tar.gz against its SHA-256 manifest (and signature)", func(ctx context.Context, args []string) error {
		return verifyMain(ctx, args, os.Stdout, os.Stderr)
	})
}

// verifyMain re-hashes a run folder (out/<run id>, out/latest) or a
// bundle.tar.gz and names every altered, missing or extra file. Exit code 1
// means the evidence does not match; 2 means it could not be read at all.
func verifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pubPath := fs.String("pubkey", "", "ed25519 public key (PEM \"PUBLIC KEY\", OpenSSH ssh-ed25519 line, or 32 bytes hex/base64): MANIFEST.sha256.sig must verify with it")
	quiet := fs.Bool("q", false, "print nothing when everything matches")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailchaos verify [-pubkey pub.pem] [-q] <run folder | bundle.tar.gz>")
		fmt.Fprintln(stderr, "\nRe-hashes every file against MANIFEST.sha256 and names each altered, missing or extra one.")
		fmt.Fprintln(stderr, "A folder holding bundle.tar.gz is checked together with its bundle. Exit code 0 all match,")
		fmt.Fprintln(stderr, "1 something does not match, 2 the path or key could not be read.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want exactly one run folder or bundle, got %d arguments", fs.NArg())
	}
	var opts evidence.VerifyOptions
	if *pubPath != "" {
		k, err := evidence.LoadPublicKey(*pubPath)
		if err != nil {
			return err
		}
		opts.PublicKey = ed25519.PublicKey(k)
	}
	rep, err := evidence.Verify(ctx, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	if !rep.OK() {
		for _, c := range rep.Checked {
			fmt.Fprintln(stdout, "checked", c)
		}
		return withExitCode(1, rep.Err())
	}
	if !*quiet {
		for _, c := range rep.Checked {
			fmt.Fprintln(stdout, "checked", c)
		}
		sig := "unsigned"
		switch {
		case rep.SigValid:
			sig = "signature valid"
		case rep.Signed:
			sig = "signed, signature not checked (give -pubkey)"
		}
		fmt.Fprintf(stdout, "OK %s: %d files match MANIFEST.sha256, nothing extra; %s\n", rep.Source, rep.Files, sig)
	}
	return nil
}
