package auth

import (
	"net/url"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpCode is the RFC 6238 code of secret at t.
func totpCode(tb testing.TB, secret string, t time.Time) string {
	tb.Helper()
	code, err := totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{
		Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

func TestTOTPKeysAreWhatAuthenticatorAppsScan(t *testing.T) {
	k, err := newTOTPKey("Vidda", "ingrid")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(k.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Vidda:ingrid" || q.Get("issuer") != "Vidda" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" || len(q.Get("secret")) != 32 {
		t.Fatalf("otpauth URL %s", k.URL())
	}
}

func TestTOTPCodes(t *testing.T) {
	// A fixed secret and time keep the codes, and so the test, the same
	// every run (a random one could collide across steps one run in 10⁵).
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	now := time.Unix(1_700_000_015, 0) // mid-step
	cur := totpStep(now)
	tests := []struct {
		name     string
		code     string
		lastStep int64
		ok       bool
		step     int64
	}{
		{"now's code is accepted", totpCode(t, secret, now), 0, true, cur},
		{"the previous step's code is accepted (clock skew)", totpCode(t, secret, now.Add(-30*time.Second)), 0, true, cur - 1},
		{"the next step's code is accepted (clock skew)", totpCode(t, secret, now.Add(30*time.Second)), 0, true, cur + 1},
		{"a code two steps old is refused", totpCode(t, secret, now.Add(-60*time.Second)), 0, false, 0},
		{"a code two steps ahead is refused", totpCode(t, secret, now.Add(60*time.Second)), 0, false, 0},
		{"a code already used is refused", totpCode(t, secret, now), cur, false, 0},
		{"an older code after a newer one was used is refused", totpCode(t, secret, now.Add(-30*time.Second)), cur, false, 0},
		{"a wrong code is refused", wrongCode(totpCode(t, secret, now)), 0, false, 0},
		{"an empty code is refused", "", 0, false, 0},
		{"five digits are refused", totpCode(t, secret, now)[:5], 0, false, 0},
		{"letters are refused", "abcdef", 0, false, 0},
		{"surrounding spaces are forgiven", " " + totpCode(t, secret, now) + " ", 0, true, cur},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step, ok := checkTOTP(secret, tt.code, now, tt.lastStep)
			if ok != tt.ok || (ok && step != tt.step) {
				t.Fatalf("checkTOTP = %d, %v; want %d, %v", step, ok, tt.step, tt.ok)
			}
		})
	}
}

// wrongCode changes the last digit.
func wrongCode(code string) string {
	b := []byte(code)
	b[len(b)-1] = '0' + (b[len(b)-1]-'0'+1)%10
	return string(b)
}
