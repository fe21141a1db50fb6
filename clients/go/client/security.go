package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Security says how to reach a voxgate that authenticates callers (docs/security.md). The zero
// value is plaintext without a key, for loopback.
type Security struct {
	// Token is the caller key, sent as "authorization: Bearer <token>" on every call.
	Token string
	// TLS turns TLS on, with the system's roots unless CAFile is set.
	TLS bool
	// CAFile is a PEM CA bundle for the server certificate (implies TLS).
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key, for mutual TLS (imply TLS).
	CertFile, KeyFile string
}

// Secure reports whether the channel uses TLS.
func (s Security) Secure() bool {
	return s.TLS || s.CAFile != "" || s.CertFile != ""
}

func (s Security) dialOptions() ([]grpc.DialOption, error) {
	var options []grpc.DialOption
	if s.Secure() {
		config, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		options = append(options, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		options = append(options, grpc.WithInsecure()) // grpc-go 1.33 (Debian bookworm) predates credentials/insecure
	}
	if s.Token != "" {
		options = append(options, grpc.WithPerRPCCredentials(bearer(s.Token)))
	}
	return options, nil
}

func (s Security) tlsConfig() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate in it", s.CAFile)
		}
		config.RootCAs = roots
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate and a key file")
	}
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// bearer is per-call credentials carrying the caller key. It does not require TLS: over
// plaintext the key still goes to a loopback voxgate (tests) or a TLS-terminating proxy.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (b bearer) RequireTransportSecurity() bool { return false }
