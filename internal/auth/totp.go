package auth

import (
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP second factors follow RFC 6238 with the parameters every
// authenticator app understands: SHA-1, 6 digits, 30-second steps, a
// 160-bit secret (RFC 4226 §4 recommends that length). A code is accepted
// one step either side of now (RFC 6238 §5.2), and a step is accepted at
// most once per user: checkTOTP returns it and the caller stores it, so the
// same code (or an older one) cannot be replayed within its window.
const (
	totpPeriod     = 30
	totpSkew       = 1
	totpSecretSize = 20
)

// newTOTPKey makes a fresh secret for account; the key's URL (otpauth://)
// is what an authenticator app scans.
func newTOTPKey(issuer, account string) (*otp.Key, error) {
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		SecretSize:  totpSecretSize,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	return k, nil
}

// totpStep is the RFC 6238 time step (T) that t falls in.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// checkTOTP returns the time step whose code equals code, trying now's step
// and totpSkew steps either side, and ok=false when none matches or the
// matching step is not newer than lastStep (a replay). Every candidate is
// computed and compared in constant time.
func checkTOTP(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if len(code) != otp.DigitsSix.Length() {
		return 0, false
	}
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	cur := totpStep(now)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if s < 0 {
			continue
		}
		match, err := hotp.ValidateCustom(code, uint64(s), secret, opts)
		if err == nil && match && s > lastStep && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}
