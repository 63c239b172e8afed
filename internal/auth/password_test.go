package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordHashesAreArgon2idPHCStringsThatVerify(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id at OWASP parameters in PHC form", h)
	}
	again, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if again == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	tests := []struct {
		name     string
		password string
		want     bool
	}{
		{"the right password matches", "correct horse battery", true},
		{"a wrong password does not", "correct horse battery!", false},
		{"case matters", "Correct horse battery", false},
		{"an empty password does not", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.password, h)
			if err != nil || ok != tt.want {
				t.Fatalf("VerifyPassword = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
}

func TestMalformedOrHostileHashesNeverMatch(t *testing.T) {
	good, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":                    "",
		"bcrypt":                   "$2a$10$abcdefghijklmnopqrstuu5Zr8zJbM1nTK1K0jN1Jc0y3bZ6J9G1y",
		"argon2i":                  strings.Replace(good, "argon2id", "argon2i", 1),
		"another version":          strings.Replace(good, "v=19", "v=16", 1),
		"parameters out of order":  strings.Replace(good, "m=19456,t=2,p=1", "t=2,m=19456,p=1", 1),
		"a terabyte of memory":     strings.Replace(good, "m=19456", "m=1073741824", 1),
		"a thousand passes":        strings.Replace(good, "t=2", "t=1000", 1),
		"zero lanes":               strings.Replace(good, "p=1", "p=0", 1),
		"less memory than 8K/lane": strings.Replace(good, "m=19456,t=2,p=1", "m=8,t=1,p=2", 1),
		"leading zero":             strings.Replace(good, "t=2", "t=02", 1),
		"a short salt":             strings.Join([]string{"", parts[1], parts[2], parts[3], "c2FsdA", parts[5]}, "$"),
		"a short tag":              strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "dGFn"}, "$"),
		"padding in base64":        good + "=",
		"an extra field":           good + "$x",
		"a very long string":       good + strings.Repeat("A", 1000),
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := VerifyPassword("correct horse battery", h)
			if ok {
				t.Fatal("matched")
			}
			if !errors.Is(err, errMalformedHash) {
				t.Fatalf("err = %v, want errMalformedHash", err)
			}
		})
	}
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"eleven characters are too few", "abcdefghijk", false},
		{"twelve are enough", "abcdefghijkl", true},
		{"characters, not bytes, are counted", strings.Repeat("ø", 12), true},
		{"more than 1024 bytes are refused", strings.Repeat("a", 1025), false},
		{"invalid UTF-8 is refused", "abcdefghijkl\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPasswordPolicy(tt.password)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidUser)) {
				t.Fatalf("CheckPasswordPolicy = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestUnknownUsersCostAsMuchAsKnownOnes(t *testing.T) {
	h, err := newHasher(1)
	if err != nil {
		t.Fatal(err)
	}
	real, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	timeOf := func(encoded string) time.Duration {
		best := time.Hour
		for range 3 {
			start := time.Now()
			if ok, err := h.verify(ctx, "wrong password!", encoded); ok || err != nil {
				t.Fatalf("verify = %v, %v", ok, err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := timeOf(real), timeOf("")
	// Both run the same argon2id; allow generous noise on a shared machine.
	if unknown < known/2 || unknown > known*2 {
		t.Fatalf("unknown user took %s, known %s: the difference tells them apart", unknown, known)
	}
}
