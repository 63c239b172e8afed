package httpapi

import (
	"crypto/tls"
	"fmt"
	"net"
)

// TLS reports whether the server speaks HTTPS: both TLSCertFile and
// TLSKeyFile are set.
func (c Config) TLS() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }

// Scheme is "https" when the server speaks TLS, else "http".
func (c Config) Scheme() string {
	if c.TLS() {
		return "https"
	}
	return "http"
}

// loadTLS reads the certificate chain and key for the listener. TLS 1.2 is
// the floor (BSI TR-02102-2, NIST SP 800-52r2); Go's default cipher suites
// for 1.2 are already AEAD with forward secrecy first. fasthttp speaks
// HTTP/1.1 only, so that is all ALPN offers. The files are read once:
// a renewed certificate takes a restart.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("VIDDA_TLS_CERT/VIDDA_TLS_KEY: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}

// wrapTLS makes ln speak TLS when the server has a certificate.
func (s *Server) wrapTLS(ln net.Listener) net.Listener {
	if s.tls == nil {
		return ln
	}
	return tls.NewListener(ln, s.tls)
}
