package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // TURN REST (and coturn's use-auth-secret) is defined with HMAC-SHA1
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Credential makes a TURN-REST credential for participant valid until
// now+ttl: username "<unix-expiry>:<participant>", password
// base64(HMAC-SHA1(secret, username)), as coturn's use-auth-secret checks
// it.
func Credential(secret, participant string, now time.Time, ttl time.Duration) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + participant
	return username, restPassword(secret, username)
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// checkUsername parses a TURN-REST username and says whether it is still
// valid at now. The participant part may itself contain colons.
func checkUsername(username string, now time.Time) bool {
	expiry, _, found := strings.Cut(username, ":")
	if !found {
		return false
	}
	t, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil {
		return false
	}
	return now.Unix() < t
}
