package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// TokenVerifier turns a bearer token into a Principal. *KeyStore and
// *OIDCVerifier are TokenVerifiers.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*Principal, error)
}

// IssuerRouter sends each token to the verifier of the issuer its iss
// claim names, and every other token to vidda's own verifier; the HTTP edge
// sees one TokenVerifier. Reading iss before the signature is checked is
// safe: it only picks whose keys check the signature, and each verifier
// requires its own issuer again.
type IssuerRouter struct {
	own      TokenVerifier
	external map[string]TokenVerifier
}

// NewIssuerRouter routes tokens of the issuers in external to their
// verifiers and the rest to own. An issuer of external may not be vidda's
// own (DefaultIssuer).
func NewIssuerRouter(own TokenVerifier, external map[string]TokenVerifier) (*IssuerRouter, error) {
	r := &IssuerRouter{own: own, external: make(map[string]TokenVerifier, len(external))}
	for iss, v := range external {
		if iss == "" || iss == DefaultIssuer || v == nil {
			return nil, fmt.Errorf("auth: cannot route issuer %q to an external verifier", iss)
		}
		r.external[iss] = v
	}
	return r, nil
}

// Verify implements TokenVerifier.
func (r *IssuerRouter) Verify(ctx context.Context, token string) (*Principal, error) {
	if v, ok := r.external[unverifiedIssuer(token)]; ok {
		return v.Verify(ctx, token)
	}
	return r.own.Verify(ctx, token)
}

// unverifiedIssuer reads iss from a JWS compact token without checking
// anything else; "" when the token is not shaped so or has no string iss
// (the own verifier then says what is wrong with it).
func unverifiedIssuer(token string) string {
	if len(token) > maxTokenLen {
		return ""
	}
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return ""
	}
	return c.Iss
}
