package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mailchaos/mailchaos/reports/evidence"
)

func init() {
	registerMain("verify", "check a run folder or bundle.tar.gz against its SHA-256 manifest (and signature)", verifyMain)
}

// verifyMain re-hashes a run folder (out/<run id>, out/latest) or a
// bundle.tar.gz and names every altered, missing or extra file. Its first
// line of output is the verdict: OK, WARNING (everything matches, but a
// signature is present and no -pubkey was given to check it) or FAIL.
// Exit code 0 for OK and WARNING; 1 means the evidence does not match, the
// signature does not verify, or the evidence passes a limit
// (evidence.DefaultLimits); 2 means it could not be read at all, or the
// verification was interrupted.
func verifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pubPath := fs.String("pubkey", "", "ed25519 public key (PEM \"PUBLIC KEY\", OpenSSH ssh-ed25519 line, or 32 bytes hex/base64): MANIFEST.sha256.sig must be its signature of this run")
	quiet := fs.Bool("q", false, "print nothing when everything matches (a WARNING or FAIL is still printed)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailchaos verify [-pubkey pub.pem] [-q] <run folder | bundle.tar.gz>")
		fmt.Fprintln(stderr, "\nRe-hashes every file against MANIFEST.sha256 and names each altered, missing or extra one.")
		fmt.Fprintln(stderr, "A folder holding bundle.tar.gz is checked together with its bundle; a symlink (out/latest) is")
		fmt.Fprintln(stderr, "followed to its run folder. The signature binds the run id (the folder's name) and the manifest.")
		fmt.Fprintln(stderr, "First line: OK, WARNING (signature present, not checked: give -pubkey) or FAIL.")
		fmt.Fprintln(stderr, "Exit code 0 OK or WARNING, 1 something does not match, the signature is bad, or the")
		fmt.Fprintln(stderr, "evidence passes a limit (100,000 files and folders, a 32 MiB manifest, 16 GiB a file, 64 GiB a bundle);")
		fmt.Fprintln(stderr, "2 the path or key could not be read, or interrupted.")
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
		opts.PublicKey = k
	}
	rep, err := evidence.Verify(ctx, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	what := rep.Source
	if rep.Resolved != "" {
		what += " -> " + rep.Resolved
	}
	if rep.RunID != "" {
		what += " (run " + rep.RunID + ")"
	}
	files := fmt.Sprintf("%d files match %s, nothing extra", rep.Files, evidence.ManifestName)
	checked := func() {
		for _, c := range rep.Checked {
			fmt.Fprintln(stdout, "checked", c)
		}
	}
	switch {
	case !rep.OK():
		first := rep.Problems[0].String()
		if len(first) > 300 { // a crafted name; the list on stderr has it whole
			first = first[:300] + "..."
		}
		fmt.Fprintf(stdout, "FAIL %s: %d problem(s), the first: %s\n", what, len(rep.Problems)+rep.Unlisted, first)
		checked()
		return withExitCode(1, rep.Err())
	case rep.Signed && !rep.SigValid:
		// Not a plain OK: the hashes match, but nothing says who made them.
		fmt.Fprintf(stdout, "WARNING signature present, not checked: %s: %s; give -pubkey <public key> to check %s\n", what, files, evidence.SignatureName)
	case *quiet:
		return nil
	case rep.SigValid:
		fmt.Fprintf(stdout, "OK %s: %s; signature valid, by key %s\n", what, files, evidence.Fingerprint(opts.PublicKey))
	default:
		fmt.Fprintf(stdout, "OK %s: %s; unsigned\n", what, files)
	}
	if !*quiet {
		checked()
	}
	return nil
}
