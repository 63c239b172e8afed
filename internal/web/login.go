package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
)

// loginCSRFCookie carries the sign-in form's double-submit token
// (OWASP CSRF Prevention: "double submit cookie"). There is no session
// yet to bind a token to; a cross-site page cannot read this cookie, so it
// cannot put the matching value in the form. It stops login CSRF: a
// forged form signing the victim in as the attacker.
const loginCSRFCookie = "vidda_login_csrf"

// Messages shown on the sign-in page (catalog keys). Every failed sign-in
// gets the same one, so the page tells nobody whether a username exists or
// is locked.
const (
	msgSignInFailed = "login.failed"
	msgFormExpired  = "login.expired"
	msgTooMany      = "login.toomany"
	msgUnavailable  = "login.unavailable"
	maxFormUsername = 64
	maxFormPassword = auth.MaxPasswordLen
	maxUserAgent    = 256
)

// loginData fills templates/login.html. There is no session yet:
// SessionCSRF stays empty, CSRF is the form's double-submit token.
type loginData struct {
	page
	Next, Username, Error string
}

// loginPage is GET /login: the form, or straight on for a browser that
// is signed in already.
func (p *Pages) loginPage(c *fiber.Ctx) error {
	next := safeNext(c.Query("next"))
	if sess := p.session(c); sess != nil {
		return c.Redirect(landingFor(sess, next), fiber.StatusSeeOther)
	}
	return p.loginForm(c, fiber.StatusOK, next, "", "")
}

// loginForm renders the form with a login CSRF token, reusing the
// browser's cookie when it has a well-formed one.
func (p *Pages) loginForm(c *fiber.Ctx, status int, next, username, msg string) error {
	tok := c.Cookies(loginCSRFCookie)
	if !wellFormedToken(tok) {
		tok = randomToken()
		c.Cookie(&fiber.Cookie{
			Name: loginCSRFCookie, Value: tok, Path: "/login",
			Secure: p.cfg.SecureCookies, HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode,
			SessionOnly: true,
		})
	}
	d := loginData{page: p.base(c, nil, "login.title"), Next: next, Username: username}
	d.CSRF = tok
	if msg != "" {
		d.Error = d.L.T(msg)
	}
	return p.render(c, status, "login", d)
}

// signIn is POST /login (form: username, password, code, csrf, next).
func (p *Pages) signIn(c *fiber.Ctx) error {
	ctx := c.UserContext()
	username := truncate(strings.TrimSpace(c.FormValue("username")), maxFormUsername)
	next := safeNext(c.FormValue("next"))
	ev := p.event(c, username)
	if !sameToken(c.FormValue("csrf"), c.Cookies(loginCSRFCookie)) {
		ev.Outcome = auth.SignInBadRequest
		p.record(c, ev)
		// The form comes back with the cookie's token, or a new cookie.
		return p.loginForm(c, fiber.StatusForbidden, next, username, msgFormExpired)
	}
	password := c.FormValue("password")
	if len(password) > maxFormPassword {
		password = "" // cannot be anyone's; still costs a hash below
	}
	tok, sess, err := p.deps.Accounts.SignIn(ctx, auth.Credentials{
		Username: username, Password: password, Code: truncate(c.FormValue("code"), 16),
	})
	if err != nil {
		var se *auth.SignInError
		if !errors.As(err, &se) {
			p.log.ErrorContext(ctx, "sign-in failed", "err", err, "request_id", requestID(c))
			return p.loginForm(c, fiber.StatusServiceUnavailable, next, username, msgUnavailable)
		}
		ev.Outcome = se.Outcome
		if se.User != nil {
			ev.UserID, ev.Role, ev.PatientID, ev.PractitionerID = se.User.ID, se.User.Role, se.User.PatientID, se.User.PractitionerID
		}
		p.record(c, ev)
		return p.loginForm(c, fiber.StatusOK, next, username, msgSignInFailed)
	}
	// A session the browser had before is ended, not reused: nobody who
	// planted or saw an earlier cookie rides along (session fixation).
	if old := c.Cookies(auth.SessionCookie); old != "" {
		if err := p.deps.Accounts.SignOut(ctx, old); err != nil {
			p.log.WarnContext(ctx, "end previous session", "err", err, "request_id", requestID(c))
		}
	}
	p.setSessionCookie(c, tok)
	p.clearCookie(c, loginCSRFCookie, "/login")
	ev.Outcome = auth.SignInSucceeded
	ev.UserID, ev.Role, ev.SessionID = sess.UserID, sess.Principal.Role, sess.ID
	ev.PatientID, ev.PractitionerID = sess.Principal.PatientID, sess.Principal.PractitionerID
	p.record(c, ev)
	return c.Redirect(landingFor(sess, next), fiber.StatusSeeOther)
}

// tooManyAttempts answers a sign-in over the per-address limit.
func (p *Pages) tooManyAttempts(c *fiber.Ctx) error {
	username := truncate(strings.TrimSpace(c.FormValue("username")), maxFormUsername)
	ev := p.event(c, username)
	ev.Outcome = auth.SignInRateLimited
	p.record(c, ev)
	return p.loginForm(c, fiber.StatusTooManyRequests, safeNext(c.FormValue("next")), username, msgTooMany)
}

// signOut is POST /logout (form field csrf, or header X-CSRF-Token): it
// ends the session and clears the cookie. Without a live session there is
// nothing to protect, and it just clears the cookie.
func (p *Pages) signOut(c *fiber.Ctx) error {
	if sess := p.session(c); sess != nil {
		if !sess.CheckCSRF(csrfToken(c)) {
			return p.fail(c, sess, fiber.StatusForbidden, "error.signout")
		}
		if err := p.deps.Accounts.SignOut(c.UserContext(), c.Cookies(auth.SessionCookie)); err != nil {
			return err
		}
		p.hub.endSession(sess.ID) // this browser's live streams end now
		ev := p.event(c, sess.Username)
		ev.Outcome = auth.SignedOut
		ev.UserID, ev.Role, ev.SessionID = sess.UserID, sess.Principal.Role, sess.ID
		ev.PatientID, ev.PractitionerID = sess.Principal.PatientID, sess.Principal.PractitionerID
		p.record(c, ev)
	}
	p.clearCookie(c, auth.SessionCookie, "/")
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// session returns the browser's live session, or nil.
func (p *Pages) session(c *fiber.Ctx) *auth.Session {
	tok := c.Cookies(auth.SessionCookie)
	if tok == "" {
		return nil
	}
	sess, err := p.deps.Accounts.VerifySession(c.UserContext(), tok)
	if err != nil {
		if !errors.Is(err, auth.ErrUnauthenticated) {
			p.log.WarnContext(c.UserContext(), "verify session", "err", err, "request_id", requestID(c))
		}
		return nil
	}
	return sess
}

// setSessionCookie sets the session cookie: HttpOnly (no script reads
// it), Secure under https, Path=/ (the API under /fhir takes it too), and
// SameSite=Lax. Strict would also work for this form's own redirect, but
// would drop the cookie when a nurse follows a link into vidda from the
// EHR or an e-mail, and on the return from an OIDC provider; Lax still
// withholds it from cross-site POSTs, and every state-changing request
// needs the session's CSRF token besides. No Expires: the browser forgets
// it when it closes, the server ends it after the idle or absolute
// timeout.
func (p *Pages) setSessionCookie(c *fiber.Ctx, tok string) {
	c.Cookie(&fiber.Cookie{
		Name: auth.SessionCookie, Value: tok, Path: "/",
		Secure: p.cfg.SecureCookies, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		SessionOnly: true,
	})
}

// clearCookie tells the browser to drop a cookie set with path.
func (p *Pages) clearCookie(c *fiber.Ctx, name, path string) {
	c.Cookie(&fiber.Cookie{
		Name: name, Value: "", Path: path, MaxAge: -1, Expires: time.Unix(0, 0),
		Secure: p.cfg.SecureCookies, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// event starts the audit record of a request.
func (p *Pages) event(c *fiber.Ctx, username string) auth.SignInEvent {
	name, err := auth.NormalizeUsername(username)
	if err != nil {
		name = username // recorded as typed (already bounded)
	}
	return auth.SignInEvent{
		// The event outlives the request and fasthttp reuses the form's
		// buffer; a normalized name may still be a slice of it.
		Username:   strings.Clone(name),
		RemoteAddr: c.IP(),
		UserAgent:  strings.Clone(truncate(c.Get(fiber.HeaderUserAgent), maxUserAgent)),
		RequestID:  requestID(c),
		At:         time.Now(),
	}
}

func (p *Pages) record(c *fiber.Ctx, ev auth.SignInEvent) {
	if p.deps.Recorder != nil {
		p.deps.Recorder.RecordSignIn(c.UserContext(), ev)
	}
}

// landingFor is where a signed-in user goes: next when given, else /app
// for staff and /me for patients.
func landingFor(sess *auth.Session, next string) string {
	if next != "" {
		return next
	}
	if sess.Principal.Role == auth.RolePatient {
		return "/me"
	}
	return "/app"
}

// safeNext returns next when it is a path on this site to go on to after
// sign-in, else "". It refuses anything a browser could read as another
// origin: schemes, "//host", "/\host", control characters, and the
// sign-in and sign-out pages themselves.
func safeNext(next string) string {
	if next == "" || len(next) > 512 || next[0] != '/' || strings.HasPrefix(next, "//") {
		return ""
	}
	for i := range len(next) {
		if c := next[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	if u.Path == "/login" || u.Path == "/logout" {
		return ""
	}
	return strings.Clone(next)
}

// csrfToken is the token a cookie-authenticated request offers: header
// X-CSRF-Token, else form field csrf.
func csrfToken(c *fiber.Ctx) string {
	if h := c.Get("X-CSRF-Token"); h != "" {
		return h
	}
	return c.FormValue("csrf")
}

// randomToken is 256 random bits in unpadded base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func wellFormedToken(s string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == 32 && len(s) == 43
}

// sameToken compares a submitted token with the cookie's in constant time.
func sameToken(submitted, cookie string) bool {
	return wellFormedToken(cookie) && subtle.ConstantTimeCompare([]byte(submitted), []byte(cookie)) == 1
}

func requestID(c *fiber.Ctx) string {
	return strings.Clone(c.GetRespHeader(fiber.HeaderXRequestID))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
