package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// PKI is a throw-away certificate authority of one test, with a server certificate for
// 127.0.0.1 and localhost and a client certificate that it signed: ECDSA P-256 keys, valid for
// an hour. The certificates and keys are PEM files in a temporary directory of the test.
type PKI struct {
	// CAFile is the CA's certificate: what -nats-ca and -redis-ca take.
	CAFile string
	// ServerCertFile and ServerKeyFile are the server's certificate and key.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are the client's certificate and key: what -nats-cert and
	// -nats-key (or -redis-cert and -redis-key) take.
	ClientCertFile, ClientKeyFile string

	pool           *x509.CertPool
	server, client tls.Certificate
}

// NewPKI makes a CA and its server and client certificates. It fails the test on error.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testenv CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testenv: CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("testenv: CA certificate: %v", err)
	}
	p := &PKI{CAFile: filepath.Join(dir, "ca.pem"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)
	issue := func(serial int64, name string, usage x509.ExtKeyUsage, hosts bool) (certFile, keyFile string, cert tls.Certificate) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "testenv " + name},
			NotBefore:    now.Add(-time.Minute),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if hosts {
			tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("testenv: %s certificate: %v", name, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatalf("testenv: %s key: %v", name, err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "PRIVATE KEY", keyDER)
		return certFile, keyFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p.ServerCertFile, p.ServerKeyFile, p.server = issue(2, "server", x509.ExtKeyUsageServerAuth, true)
	p.ClientCertFile, p.ClientKeyFile, p.client = issue(3, "client", x509.ExtKeyUsageClientAuth, false)
	return p
}

// ServerTLS returns the TLS configuration of a server with the PKI's server certificate that
// requires a client certificate signed by the PKI's CA.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS returns the TLS configuration of a client that trusts the PKI's CA and presents its
// client certificate.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12}
}

// RedisArgs returns the redis-server arguments (also sentinel.conf's settings, a line each) that
// make a server on port speak TLS only, with the PKI's server certificate, and require client
// certificates the CA signed. Its own connections to its master (replication), to its peers (the
// cluster bus) and, for a sentinel, to the servers it watches use TLS too, with the client
// certificate.
func (p *PKI) RedisArgs(port string) []string {
	return []string{"--port", "0", "--tls-port", port, "--tls-cert-file", p.ServerCertFile, "--tls-key-file", p.ServerKeyFile,
		"--tls-ca-cert-file", p.CAFile, "--tls-client-cert-file", p.ClientCertFile, "--tls-client-key-file", p.ClientKeyFile,
		"--tls-replication", "yes", "--tls-cluster", "yes"}
}

// StartNATSTLS starts a NATS server (StartNATS) that speaks TLS only, with the PKI's server
// certificate, and requires and verifies client certificates (mutual TLS). Its URL is
// tls://127.0.0.1:port.
func StartNATSTLS(t testing.TB, p *PKI) *NATS {
	t.Helper()
	return StartNATSWith(t, func(o *natsserver.Options) {
		o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, true, p.ServerTLS(), 5
	})
}

// StartRedisTLS starts an in-process Redis-protocol server (miniredis) that speaks TLS only, with
// the PKI's server certificate, and requires and verifies client certificates. Its address is
// 127.0.0.1:port; it is closed when the test ends.
func StartRedisTLS(t testing.TB, p *PKI) *miniredis.Miniredis {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.StartTLS(p.ServerTLS()); err != nil {
		t.Fatalf("testenv: miniredis on TLS: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// NkeyUser makes a NATS user nkey and writes its seed (SU…) to a file of the test: it returns
// the file, for -nats-nkey, and the user's public key, for the server's Options.Nkeys.
func NkeyUser(t testing.TB) (seedFile, publicKey string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("testenv: nkey: %v", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatalf("testenv: nkey seed: %v", err)
	}
	if publicKey, err = kp.PublicKey(); err != nil {
		t.Fatalf("testenv: nkey public key: %v", err)
	}
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, append(seed, '\n'), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return seedFile, publicKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: key: %v", err)
	}
	return key
}

func writePEM(t testing.TB, file, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
