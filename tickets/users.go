package tickets

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/crypto/argon2"

	"github.com/govline/ivr/store"
)

// Role is what a console user may do (docs/console.md has the table).
type Role string

// Roles.
const (
	RoleOperator      Role = "operator"      // level I: registers, resolves, escalates
	RoleSpecialist    Role = "specialist"    // level II, specialist of a service
	RoleAdministrator Role = "administrator" // level III, technical administrator
	RoleSupervisor    Role = "supervisor"    // indicators, the knowledge base misses
	// RoleMonitor is the national monitoring agency: every provider's
	// indicators, no ticket and no personal data.
	RoleMonitor Role = "monitor"
)

// Roles lists every role.
var Roles = []Role{RoleOperator, RoleSpecialist, RoleAdministrator, RoleSupervisor, RoleMonitor}

// Level returns the support level of an agent role (1, 2, 3), 0 for the
// supervisor and the monitor.
func (r Role) Level() int {
	switch r {
	case RoleOperator:
		return Level1
	case RoleSpecialist:
		return Level2
	case RoleAdministrator:
		return Level3
	}
	return 0
}

var (
	// ErrBadLogin is returned by Login for an unknown user or a wrong
	// password (which of the two is not said).
	ErrBadLogin = errors.New("wrong user name or password")
	// ErrLocked is returned by Login while an account is locked after
	// too many failed sign-ins.
	ErrLocked = errors.New("account locked after repeated failed sign-ins; try again later")
)

// User is a console account (never with its password hash).
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Provider is the provider whose tickets and indicators the user
	// works with (DefaultProvider unless given); a monitor's is not
	// used: it sees every provider's indicators.
	Provider    string    `json:"provider"`
	Disabled    bool      `json:"disabled"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	Created     time.Time `json:"created"`
	// Lang is the language the console speaks to the user: LangRomanian
	// (the default) or LangEnglish; the user chooses it (SetUserLang).
	Lang string `json:"lang"`
	// External: the account signs in through the identity provider
	// (ExternalLogin) and has no usable password; its role and provider
	// follow the provider's assertion.
	External bool `json:"external,omitempty"`
}

// The console's languages: Romanian by default, English the second.
const (
	LangRomanian = "ro"
	LangEnglish  = "en"
)

// Langs lists the console's languages, the default first.
var Langs = []string{LangRomanian, LangEnglish}

// LoginPolicy is how sign-ins and sessions behave. Zero fields take the
// defaults in DefaultLoginPolicy.
type LoginPolicy struct {
	// MaxFailures consecutive failed sign-ins lock the account for Lockout.
	MaxFailures int
	Lockout     time.Duration
	// SessionTTL is how long a session lasts after sign-in (one shift).
	SessionTTL time.Duration
	// BreakGlass, when not nil, limits password sign-in to these accounts
	// (the break-glass accounts kept for when the identity provider is
	// down), and these accounts never sign in through the identity
	// provider (ExternalLogin refuses them). nil: every account with a
	// password may sign in with it.
	BreakGlass []string
}

// DefaultLoginPolicy: 5 failures lock for 15 minutes; sessions last 10 hours.
var DefaultLoginPolicy = LoginPolicy{MaxFailures: 5, Lockout: 15 * time.Minute, SessionTTL: 10 * time.Hour}

func (p LoginPolicy) withDefaults() LoginPolicy {
	if p.MaxFailures <= 0 {
		p.MaxFailures = DefaultLoginPolicy.MaxFailures
	}
	if p.Lockout <= 0 {
		p.Lockout = DefaultLoginPolicy.Lockout
	}
	if p.SessionTTL <= 0 {
		p.SessionTTL = DefaultLoginPolicy.SessionTTL
	}
	return p
}

// Session is a signed-in user. Token is set only by Login (the store keeps
// its SHA-256 only); CSRF is the per-session token every state-changing
// request must carry.
type Session struct {
	Token   string    `json:"-"`
	User    User      `json:"user"`
	CSRF    string    `json:"-"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes,
// 1 lane), stored as a PHC string so the parameters can grow later.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	// MinPasswordLen is the shortest password AddUser accepts.
	MinPasswordLen = 10
)

func hashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// passwordChecks counts the argon2id derivations of verifyPassword (a
// sign-in's cost, which must not depend on whether the user exists).
var passwordChecks atomic.Uint64

// verifyPassword reports whether pw matches the PHC string enc.
func verifyPassword(enc, pw string) bool {
	parts := strings.Split(enc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<21 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 || len(key) > 128 {
		return false
	}
	passwordChecks.Add(1)
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// dummyHash is verified against when the user does not exist, so that a
// sign-in takes as long for an unknown name as for a wrong password.
var dummyHash = func() string {
	h, err := hashPassword("not a password of anybody")
	if err != nil {
		panic(err)
	}
	return h
}()

func checkUserName(name string) error {
	if name == "" || len(name) > 64 {
		return invalid("user name", "want 1 to 64 characters")
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_') {
			return invalid("user name", "%q: use letters, digits, '.', '-' and '_'", name)
		}
	}
	return nil
}

func checkPassword(pw string) error {
	if len([]rune(pw)) < MinPasswordLen {
		return invalid("password", "too short: at least %d characters", MinPasswordLen)
	}
	if len(pw) > 1024 {
		return invalid("password", "too long: at most 1024 bytes")
	}
	return nil
}

// AddUser creates a console account of DefaultProvider. actor is who adds
// it (audited).
func (s *Store) AddUser(ctx context.Context, actor, name string, role Role, password string) error {
	return s.AddProviderUser(ctx, actor, DefaultProvider, name, role, password)
}

// AddProviderUser creates a console account of provider (audited as
// "user_add" by actor).
func (s *Store) AddProviderUser(ctx context.Context, actor, provider, name string, role Role, password string) error {
	op := "add user " + name
	if err := checkProviderID(provider); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if err := checkUserName(name); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if err := checkEnum("role", role, Roles); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if err := checkPassword(password); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if err := checkActor(actor); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	h, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name = ?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("user %q %w", name, ErrExists)
		}
		if err := providerExists(ctx, tx, provider); err != nil {
			return invalid("provider", "%v", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, password, created_ns, provider) VALUES (?, ?, ?, ?, ?)`,
			name, string(role), h, now.UnixNano(), provider); store.IsUnique(err) {
			return fmt.Errorf("user %q %w", name, ErrExists) // added by another engine meanwhile
		} else if err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "user_add", Target: name, Detail: "role " + string(role) + ", provider " + provider, OK: true})
	}))
}

// SetPassword replaces a user's password and unlocks the account; the
// user's sessions end. An external account becomes a local one.
func (s *Store) SetPassword(ctx context.Context, actor, name, password string) error {
	op := "set password of " + name
	if err := checkPassword(password); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	h, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		// An external account given a password becomes a local one
		// again (until its next sign-in through the identity provider,
		// unless it is a break-glass account).
		res, err := tx.ExecContext(ctx, `UPDATE users SET password = ?, failed = 0, locked_until = 0, external = 0 WHERE name = ?`, h, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %q %w", name, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE "user" = ?`, name); err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "user_password", Target: name, OK: true})
	}))
}

const userColumns = `name, role, disabled, locked_until, created_ns, lang, provider, external`

func scanUser(sc interface{ Scan(...any) error }) (User, error) {
	var u User
	var disabled, external int
	var locked, created int64
	if err := sc.Scan(&u.Name, &u.Role, &disabled, &locked, &created, &u.Lang, &u.Provider, &external); err != nil {
		return u, err
	}
	u.Disabled, u.Created, u.External = disabled != 0, fromNanos(created), external != 0
	if locked != 0 {
		u.LockedUntil = fromNanos(locked)
	}
	return u, nil
}

// User returns one account.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("tickets: user %q %w", name, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("tickets: user %q: %w", name, err)
	}
	return u, nil
}

// Users returns every account, by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("tickets: users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("tickets: users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func randomToken() (string, error) {
	b := make([]byte, 32) // 256 bits
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Login checks a user's password and opens a session. Every attempt is
// audited with the address it came from: a failure as "login_failed" (with
// the name as typed, never the password), a refusal of a locked account as
// "login_locked". After p.MaxFailures consecutive failures the account is
// locked for p.Lockout, even for the right password. It returns ErrBadLogin
// or ErrLocked (wrapped) when refused.
func (s *Store) Login(ctx context.Context, name, password, address string, p LoginPolicy) (Session, error) {
	p = p.withDefaults()
	var enc string
	var u User
	err := s.db.QueryRowContext(ctx, `SELECT `+userColumns+`, password FROM users WHERE name = ?`, name).
		Scan(&u.Name, &u.Role, new(int), new(int64), new(int64), new(string), new(string), &u.External, &enc)
	known := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("tickets: login: %w", err)
	}
	// An external account has no password (its column holds a marker):
	// a dummy hash is checked for it as for an unknown name, so that
	// the answer takes as long.
	if !known || u.External {
		enc = dummyHash
	}
	good := verifyPassword(enc, password) && known && !u.External
	passwordAllowed := p.BreakGlass == nil || slices.Contains(p.BreakGlass, name)
	if len(name) > 64 {
		name = name[:64]
	}
	now := s.now()
	var sess Session
	var result error
	err = s.inTx(ctx, "login", func(tx *store.Tx) error {
		result = nil
		if !known {
			result = ErrBadLogin
			return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "login_failed", Detail: "unknown user", Address: address})
		}
		cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`+s.db.ForUpdate(), name))
		if err != nil {
			return err
		}
		switch {
		case cur.Disabled:
			result = ErrBadLogin
			return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "login_failed", Detail: "account disabled", Address: address})
		case cur.External:
			// Not counted as a failure: nothing can guess a password
			// that does not exist, and a lockout would be meaningless.
			result = ErrBadLogin
			return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "login_failed", Detail: "password sign-in of an external account (it signs in through the identity provider)", Address: address})
		case !passwordAllowed:
			result = ErrBadLogin
			return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "login_failed", Detail: "password sign-in is for the break-glass accounts only", Address: address})
		case !cur.LockedUntil.IsZero() && now.Before(cur.LockedUntil):
			result = ErrLocked
			return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "login_locked",
				Detail: "locked until " + cur.LockedUntil.Format(time.RFC3339), Address: address})
		case !good:
			result = ErrBadLogin
			var failed int
			if err := tx.QueryRowContext(ctx, `UPDATE users SET failed = failed + 1 WHERE name = ? RETURNING failed`, name).Scan(&failed); err != nil {
				return err
			}
			detail := fmt.Sprintf("wrong password (%d in a row)", failed)
			if failed >= p.MaxFailures {
				until := now.Add(p.Lockout)
				if _, err := tx.ExecContext(ctx, `UPDATE users SET failed = 0, locked_until = ? WHERE name = ?`, until.UnixNano(), name); err != nil {
					return err
				}
				detail += "; locked until " + until.Format(time.RFC3339)
			}
			return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "login_failed", Detail: detail, Address: address})
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET failed = 0, locked_until = 0 WHERE name = ?`, name); err != nil {
			return err
		}
		sess, err = newSession(ctx, tx, cur, address, now, p, "")
		return err
	})
	if err != nil {
		return Session{}, wrapOp("login", err)
	}
	if result != nil {
		return Session{}, fmt.Errorf("tickets: login: %w", result)
	}
	return sess, nil
}

// newSession opens a session of u in tx, audited as "login" with detail.
func newSession(ctx context.Context, tx *store.Tx, u User, address string, now time.Time, p LoginPolicy, detail string) (Session, error) {
	tok, err := randomToken()
	if err != nil {
		return Session{}, err
	}
	csrf, err := randomToken()
	if err != nil {
		return Session{}, err
	}
	sess := Session{Token: tok, User: u, CSRF: csrf, Created: now, Expires: now.Add(p.SessionTTL)}
	sess.User.LockedUntil = time.Time{}
	// Expired sessions are dropped as new ones are made.
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_ns < ?`, now.UnixNano()); err != nil {
		return Session{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, "user", csrf, created_ns, expires_ns, address) VALUES (?, ?, ?, ?, ?, ?)`,
		tokenHash(tok), u.Name, csrf, now.UnixNano(), sess.Expires.UnixNano(), address); err != nil {
		return Session{}, err
	}
	return sess, insertAudit(ctx, tx, AuditEntry{At: now, User: u.Name, Action: "login", Detail: detail, Address: address, OK: true})
}

// SessionByToken returns the live session of a token (from the cookie),
// or ErrNotFound (wrapped) when there is none, it expired, or its user was
// disabled.
func (s *Store) SessionByToken(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > 100 {
		return Session{}, fmt.Errorf("tickets: session %w", ErrNotFound)
	}
	var sess Session
	var created, expires int64
	var disabled, external int
	err := s.db.QueryRowContext(ctx, `SELECT s.csrf, s.created_ns, s.expires_ns, u.name, u.role, u.disabled, u.created_ns, u.lang, u.provider, u.external
		FROM sessions s JOIN users u ON u.name = s."user" WHERE s.token_hash = ?`, tokenHash(token)).
		Scan(&sess.CSRF, &created, &expires, &sess.User.Name, &sess.User.Role, &disabled, new(int64), &sess.User.Lang, &sess.User.Provider, &external)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("tickets: session %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("tickets: session: %w", err)
	}
	sess.Created, sess.Expires = fromNanos(created), fromNanos(expires)
	sess.User.External = external != 0
	if disabled != 0 || !s.now().Before(sess.Expires) {
		return Session{}, fmt.Errorf("tickets: session %w (expired)", ErrNotFound)
	}
	return sess, nil
}

// Logout ends the session of token (audited). Ending an unknown session is
// not an error.
func (s *Store) Logout(ctx context.Context, token, address string) error {
	now := s.now()
	return opErr("logout", s.inTx(ctx, "logout", func(tx *store.Tx) error {
		var user string
		err := tx.QueryRowContext(ctx, `DELETE FROM sessions WHERE token_hash = ? RETURNING "user"`, tokenHash(token)).Scan(&user)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: user, Action: "logout", Address: address, OK: true})
	}))
}

// SetUserDisabled disables (or re-enables) an account; a disabled user's
// sessions end at once.
func (s *Store) SetUserDisabled(ctx context.Context, actor, name string, disabled bool) error {
	op := "disable user " + name
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		d := 0
		if disabled {
			d = 1
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = ? WHERE name = ?`, d, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %q %w", name, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE "user" = ?`, name); err != nil {
			return err
		}
		action := "user_enable"
		if disabled {
			action = "user_disable"
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: action, Target: name, OK: true})
	}))
}

// SetUserLang sets the language the console speaks to a user (one of
// Langs), audited as "user_lang" with the user as actor. The user's open
// sessions speak it from their next page.
func (s *Store) SetUserLang(ctx context.Context, name, lang string) error {
	op := "set language of " + name
	if err := checkEnum("language", lang, Langs); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET lang = ? WHERE name = ?`, lang, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %q %w", name, ErrNotFound)
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: name, Action: "user_lang", Target: name, Detail: lang, OK: true})
	}))
}
