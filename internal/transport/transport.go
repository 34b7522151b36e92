// Package transport turns the files that secure the worker's and the publisher's connections (a
// NATS credentials or nkey seed file, CA bundles, client certificates and their keys) into the
// options of the NATS and Redis clients. The two commands share the flag names, so its errors name
// the flag and the path of the file at fault; they never hold what a key or seed file contains.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nats-io/nats.go"
)

// NATSFiles are the files a NATS connection authenticates and encrypts with, each named by its
// flag. An empty path is none.
type NATSFiles struct {
	// Creds is a credentials file: a user JWT and its nkey seed (-nats-creds).
	Creds string
	// Nkey is a file holding a user nkey seed, SU… (-nats-nkey). Not with Creds.
	Nkey string
	// CA is a PEM bundle of the CAs that sign the servers' certificates (-nats-ca). Empty trusts
	// the system's roots.
	CA string
	// Cert and Key are the PEM client certificate and its private key, for servers that verify
	// their clients' certificates (mutual TLS) (-nats-cert, -nats-key). Both or neither.
	Cert, Key string
}

// Options returns the client options that use the files. It reads the nkey seed, the CAs and the
// client certificate now, so that a missing or malformed file is an error at start-up naming its
// flag and path; the client reads them again at each reconnect, which picks up renewed
// certificates. The credentials file is read when connecting, as before.
func (f NATSFiles) Options() ([]nats.Option, error) {
	if f.Creds != "" && f.Nkey != "" {
		return nil, errors.New("-nats-nkey: not with -nats-creds, which holds an nkey seed already: give one of them")
	}
	var opts []nats.Option
	if f.Creds != "" {
		opts = append(opts, nats.UserCredentials(f.Creds))
	}
	if f.Nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(f.Nkey)
		if err != nil {
			return nil, fileError("nats-nkey", f.Nkey, err)
		}
		opts = append(opts, opt)
	}
	if f.CA != "" {
		if _, err := loadCAs("nats-ca", f.CA); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(f.CA))
	}
	if f.Cert != "" || f.Key != "" {
		if _, err := loadKeyPair("nats", f.Cert, f.Key); err != nil {
			return nil, err
		}
		opts = append(opts, nats.ClientCert(f.Cert, f.Key))
	}
	return opts, nil
}

// RedisFiles are the files a rediss:// connection encrypts and authenticates with, each named by
// its flag. An empty path is none.
type RedisFiles struct {
	// CA is a PEM bundle of the CAs that sign the server's certificate (-redis-ca). Empty trusts
	// the system's roots.
	CA string
	// Cert and Key are the PEM client certificate and its private key, for a server that verifies
	// its clients' certificates (-redis-cert, -redis-key). Both or neither.
	Cert, Key string
}

// ErrFilesNeedTLS is the error of TLS files given for a Redis URL without TLS.
var ErrFilesNeedTLS = errors.New("-redis-ca, -redis-cert and -redis-key need a rediss:// -redis-url: redis:// does not use TLS")

// TLS returns base, the TLS configuration a rediss:// URL made (nil for redis://), with the files:
// the CAs as its roots, the client certificate as its certificate; the server name and the least
// TLS version stay the URL's. Without files it returns base. The files are read once, now:
// renewed certificates take a restart.
//
// The error names the flag and the file at fault, or says that the files need a rediss:// URL
// (base nil).
func (f RedisFiles) TLS(base *tls.Config) (*tls.Config, error) {
	if f == (RedisFiles{}) {
		return base, nil
	}
	if base == nil {
		return nil, ErrFilesNeedTLS
	}
	cfg := base.Clone()
	if f.CA != "" {
		pool, err := loadCAs("redis-ca", f.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := loadKeyPair("redis", f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// loadCAs returns the certificates of the PEM file named by flag as a pool.
func loadCAs(flag, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fileError(flag, file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-%s %s: no PEM certificate in the file", flag, file)
	}
	return pool, nil
}

// loadKeyPair loads the client certificate and key of -<server>-cert and -<server>-key. Its
// errors are those of crypto/tls, which never quote a key.
func loadKeyPair(server, certFile, keyFile string) (tls.Certificate, error) {
	certFlag, keyFlag := server+"-cert", server+"-key"
	switch {
	case certFile == "":
		return tls.Certificate{}, fmt.Errorf("-%s: needs -%s, the client certificate of the key", keyFlag, certFlag)
	case keyFile == "":
		return tls.Certificate{}, fmt.Errorf("-%s: needs -%s, the private key of the certificate", certFlag, keyFlag)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fileError(certFlag, certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fileError(keyFlag, keyFile, err)
	}
	defer clear(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("-%s %s and -%s %s: %w", certFlag, certFile, keyFlag, keyFile, err)
	}
	return cert, nil
}

// fileError names the flag and the file of err, without repeating a path that err already holds.
func fileError(flag, file string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("-%s %s: %w", flag, file, err)
}
