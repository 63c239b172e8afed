package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id (RFC 9106) at OWASP's recommended
// minimum, m=19 MiB, t=2, p=1
// (https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id),
// with a 16-byte random salt and a 32-byte tag, stored as a PHC string:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt, base64 without padding>$<tag, same>
//
// The parameters travel with each hash, so raising them later leaves old
// hashes verifiable.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// Password length limits. NIST SP 800-63B §3.1.1.2 asks for at least 8
// characters and lets users choose long passphrases; 12 is our floor since
// most accounts have no second factor, and the ceiling keeps hashing cheap.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 1024
)

// Bounds on parameters read back from a stored hash: a corrupt or hostile
// row must not make one verification allocate gigabytes or run for minutes.
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 16
	maxArgonThreads   = 16
	maxPHCLen         = 256
)

// errMalformedHash means a stored password hash is not one this package
// wrote; such a user cannot sign in until an admin sets a new password.
var errMalformedHash = errors.New("malformed password hash")

// CheckPasswordPolicy reports why a new password is not acceptable, in a
// message fit for the person choosing it; errors wrap ErrInvalidUser.
func CheckPasswordPolicy(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: the password is not valid UTF-8", ErrInvalidUser)
	case n < MinPasswordLen:
		return fmt.Errorf("%w: the password needs at least %d characters", ErrInvalidUser, MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("%w: the password is longer than %d bytes", ErrInvalidUser, MaxPasswordLen)
	}
	return nil
}

// HashPassword returns the PHC string of password under a fresh salt.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	tag := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return encodePHC(phc{memory: argonMemoryKiB, time: argonTime, threads: argonThreads, salt: salt, tag: tag}), nil
}

// VerifyPassword reports whether password matches the PHC string encoded,
// comparing the tags in constant time. An encoded hash it cannot read is
// an error, never a match.
func VerifyPassword(password, encoded string) (bool, error) {
	h, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	tag := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.tag))) //nolint:gosec // len(h.tag) ≤ maxPHCLen
	return subtle.ConstantTimeCompare(tag, h.tag) == 1, nil
}

// phc is a parsed argon2id PHC string.
type phc struct {
	memory, time uint32
	threads      uint8
	salt, tag    []byte
}

func encodePHC(h phc) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.memory, h.time, h.threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.tag))
}

// parsePHC reads what encodePHC writes, and nothing looser: version 19,
// the parameters in the order m, t, p, salt and tag of sane sizes.
func parsePHC(s string) (phc, error) {
	bad := func(why string) (phc, error) { return phc{}, fmt.Errorf("%w: %s", errMalformedHash, why) }
	if len(s) > maxPHCLen {
		return bad("too long")
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=..$m=..,t=..,p=..$salt$hash")
	}
	if parts[1] != "argon2id" {
		return bad("not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return bad("want m, t and p")
	}
	var h phc
	for i, want := range []struct {
		key string
		max uint64
		dst func(uint64)
	}{
		{"m", maxArgonMemoryKiB, func(v uint64) { h.memory = uint32(v) }}, //nolint:gosec // bounded by max
		{"t", maxArgonTime, func(v uint64) { h.time = uint32(v) }},        //nolint:gosec // bounded by max
		{"p", maxArgonThreads, func(v uint64) { h.threads = uint8(v) }},   //nolint:gosec // bounded by max
	} {
		k, v, ok := strings.Cut(params[i], "=")
		if !ok || k != want.key {
			return bad("want m, t and p in that order")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > want.max || (len(v) > 1 && v[0] == '0') {
			return bad("parameter " + want.key + " out of range")
		}
		want.dst(n)
	}
	// Argon2 needs at least 8 KiB per lane (RFC 9106 §3.1).
	if h.memory < 8*uint32(h.threads) {
		return bad("memory below 8 KiB per lane")
	}
	var ok bool
	if h.salt, ok = decodeB64(parts[4]); !ok || len(h.salt) < 8 {
		return bad("salt")
	}
	if h.tag, ok = decodeB64(parts[5]); !ok || len(h.tag) < 16 {
		return bad("hash")
	}
	return h, nil
}

// decodeB64 decodes unpadded standard base64 written the one canonical way
// (the decoder alone skips newlines and ignores stray trailing bits).
func decodeB64(s string) ([]byte, bool) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// hasher runs argon2id at most a few at a time: each run holds 19 MiB, and
// a burst of sign-ins must queue rather than exhaust memory.
type hasher struct {
	sem   chan struct{}
	dummy string // a hash of a random password, checked for unknown users
}

func newHasher(concurrency int) (*hasher, error) {
	pw := make([]byte, 18)
	if _, err := rand.Read(pw); err != nil {
		return nil, fmt.Errorf("dummy password: %w", err)
	}
	dummy, err := HashPassword(base64.RawURLEncoding.EncodeToString(pw))
	if err != nil {
		return nil, err
	}
	return &hasher{sem: make(chan struct{}, concurrency), dummy: dummy}, nil
}

// verify is VerifyPassword behind the semaphore. An empty encoded hash
// (unknown user) is checked against the dummy hash and never matches, so
// it costs the same time as a real check.
func (h *hasher) verify(ctx context.Context, password, encoded string) (bool, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("verify password: %w", ctx.Err())
	}
	defer func() { <-h.sem }()
	if encoded == "" {
		_, _ = VerifyPassword(password, h.dummy)
		return false, nil
	}
	return VerifyPassword(password, encoded)
}

// hash is HashPassword behind the semaphore.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("hash password: %w", ctx.Err())
	}
	defer func() { <-h.sem }()
	return HashPassword(password)
}
