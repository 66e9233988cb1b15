package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/chacc/chacc/core/archive"
)

// keygen writes <prefix>.key (PKCS #8 PEM, 0600) and <prefix>.pub (one line,
// "ed25519:<base64>") and prints the key id. It never overwrites a file.
func (c *cli) keygen(args []string) error {
	fs := flag.NewFlagSet("module keygen", flag.ContinueOnError)
	prefix := fs.String("o", "chacc-signing", "write <prefix>.key and <prefix>.pub")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("module keygen", pos, 0, ""); err != nil {
		return err
	}
	privPEM, pub, err := archive.GenerateKey()
	if err != nil {
		return err
	}
	keyFile, pubFile := *prefix+".key", *prefix+".pub"
	for _, p := range []string{keyFile, pubFile} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("module keygen: %s exists; choose another prefix with -o, or remove it", p)
		}
	}
	if err := writeNew(keyFile, privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubFile, []byte(archive.FormatPublicKey(pub)+"\n"), 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	fmt.Fprintf(c.stdout, "key id:      %s\nprivate key: %s (keep it secret)\npublic key:  %s\n             %s\n",
		archive.KeyID(pub), keyFile, pubFile, archive.FormatPublicKey(pub))
	return nil
}

// writeNew creates path, which must not exist, with mode (whatever the
// umask) and data.
func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// sign adds or replaces module.sig in an archive, in place: the signed copy
// is written beside it and renamed over it.
func (c *cli) sign(args []string) error {
	fs := flag.NewFlagSet("module sign", flag.ContinueOnError)
	keyFile := fs.String("key", "", "the private key file (PEM PKCS #8, as chacc module keygen writes it)")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("module sign", pos, 1, "the archive: chacc module sign --key <private key file> <archive>"); err != nil {
		return err
	}
	if *keyFile == "" {
		return usageErr("module sign: --key <private key file> is required")
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		return usageErr("module sign: %v", err)
	}
	key, err := archive.ParsePrivateKey(keyPEM)
	if err != nil {
		return usageErr("module sign: %s: %v", *keyFile, err)
	}
	path := pos[0]
	data, err := os.ReadFile(path)
	if err != nil {
		return usageErr("module sign: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	sig, err := archive.Sign(bytes.NewReader(data), int64(len(data)), archive.Limits{}, key, &out)
	if err != nil {
		var ae *archive.Error
		if errors.As(err, &ae) {
			return fmt.Errorf("module sign: %s: %s", path, ae.Msg)
		}
		return err
	}
	if err := writeFileAtomic(path, out.Bytes(), info.Mode().Perm()); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "signed %s with key %s\n", path, sig.KeyID)
	return nil
}
