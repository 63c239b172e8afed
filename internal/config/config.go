// Package config fills each package's Config from environment variables,
// with command-line flags that override them, and reports a bad value in one
// line that names the variable. It imports the standard library only.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Set binds flags of one command to environment variables.
type Set struct {
	fs      *flag.FlagSet
	getenv  func(string) string
	errs    []error
	entries []entry
}

type entry struct {
	env, flag string
	secret    bool
	value     func() string
}

// New returns a set for the command name reading the environment through
// getenv.
func New(name string, getenv func(string) string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &Set{fs: fs, getenv: getenv}
}

// Flags exposes the flag set, for usage output and positional arguments.
func (s *Set) Flags() *flag.FlagSet { return s.fs }

func (s *Set) usage(env, usage string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// String binds a string.
func (s *Set) String(p *string, name, env, def, usage string) {
	if v := s.env(env); v != "" {
		def = v
	}
	s.fs.StringVar(p, name, def, s.usage(env, usage))
	s.entries = append(s.entries, entry{env: env, flag: name, value: func() string { return *p }})
}

// Secret binds a string that is masked when the configuration is logged.
// Passwords inside URLs are masked, the rest of the URL is kept.
func (s *Set) Secret(p *string, name, env, def, usage string) {
	s.String(p, name, env, def, usage)
	s.entries[len(s.entries)-1].secret = true
}

// Int binds an integer.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	if v := s.env(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a whole number", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, s.usage(env, usage))
	s.entries = append(s.entries, entry{env: env, flag: name, value: func() string { return strconv.Itoa(*p) }})
}

// Bool binds a boolean.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	if v := s.env(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not true or false", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, s.usage(env, usage))
	s.entries = append(s.entries, entry{env: env, flag: name, value: func() string { return strconv.FormatBool(*p) }})
}

// Duration binds a duration such as 30s or 5m.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := s.env(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a duration like 30s or 5m", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, s.usage(env, usage))
	s.entries = append(s.entries, entry{env: env, flag: name, value: func() string { return p.String() }})
}

func (s *Set) env(name string) string {
	if name == "" {
		return ""
	}
	return strings.TrimSpace(s.getenv(name))
}

// Parse reads args over the environment. Bad environment values and bad
// flags are reported together.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err //nolint:wrapcheck // flag's own message names the flag.
	}
	return errors.Join(s.errs...)
}

// Masked returns the configuration as key/value pairs for a log line, with
// secrets masked.
func (s *Set) Masked() []any {
	out := make([]any, 0, 2*len(s.entries))
	for _, e := range s.entries {
		v := e.value()
		if e.secret {
			v = mask(v)
		}
		out = append(out, e.flag, v)
	}
	return out
}

// mask hides the secrets of a URL (its password, and query parameters
// that can carry one: libpq reads password= and sslpassword= from the
// query too) and keeps the rest, which says where vidda connects. Anything
// that is not such a URL is masked whole.
func mask(v string) string {
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "xxxxx"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "xxxxx"
		}
		for k := range q {
			if secretParam(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// secretParam reports query parameter names that may hold a secret.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"pass", "secret", "token", "key"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
