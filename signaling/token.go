package signaling

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Join tokens are short-lived capabilities to enter one visit as one
// participant: "vj1.<payload>.<mac>", the payload base64url JSON claims,
// the MAC HMAC-SHA256 over "vj1.<payload>" with the visit layer's key.
// They are not access tokens (auth.KeyStore refuses them: wrong shape and
// no at+jwt header), and an access token is not a join token (no vj1
// prefix, no valid MAC).
const tokenPrefix = "vj1."

// joinClaims is what a join token says.
type joinClaims struct {
	// Appointment is the appointment id.
	Appointment string `json:"apt"`
	// Participant is the FHIR reference the bearer joins as.
	Participant string `json:"ref"`
	// Kind is practitioner, patient or other.
	Kind string `json:"kind"`
	// Subject, Role and TokenID describe who asked, for the audit trail.
	Subject string `json:"sub"`
	Role    string `json:"role,omitempty"`
	TokenID string `json:"atid,omitempty"`
	// ID is the join token's own id.
	ID       string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

// tokens issues and checks join tokens.
type tokens struct {
	key []byte
	ttl time.Duration
}

func newTokens(key []byte, ttl time.Duration) (*tokens, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("join token key: %w", err)
		}
	}
	return &tokens{key: append([]byte(nil), key...), ttl: ttl}, nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b)
}

// issue signs c, setting its id, issue time and expiry from now.
func (t *tokens) issue(c joinClaims, now time.Time) (string, time.Time, error) {
	c.ID = randomID()
	c.IssuedAt = now.Unix()
	exp := now.Add(t.ttl)
	c.Expires = exp.Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("join token: %w", err)
	}
	signed := tokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(t.mac(signed)), exp, nil
}

func (t *tokens) mac(signed string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// verify checks tok's MAC and shape and returns its claims; expired
// reports whether its lifetime is over (the caller decides: a first join
// needs a live token, a rejoin within the grace period may use the token
// it joined with). Every failure wraps ErrInvalidToken and never quotes the
// token.
func (t *tokens) verify(tok string, now time.Time) (c joinClaims, expired bool, err error) {
	bad := func(why string) (joinClaims, bool, error) {
		return joinClaims{}, false, fmt.Errorf("%w: %s", ErrInvalidToken, why)
	}
	if len(tok) > maxTokenLen || !strings.HasPrefix(tok, tokenPrefix) {
		return bad("not a join token")
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot < len(tokenPrefix) {
		return bad("malformed")
	}
	signed, sig := tok[:dot], tok[dot+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, t.mac(signed)) {
		return bad("bad signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(signed[len(tokenPrefix):])
	if err != nil {
		return bad("malformed")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return bad("malformed")
	}
	if c.Appointment == "" || c.Participant == "" || c.ID == "" || c.Expires == 0 {
		return bad("incomplete")
	}
	if c.IssuedAt > now.Add(time.Minute).Unix() {
		return bad("issued in the future")
	}
	return c, now.Unix() >= c.Expires, nil
}
