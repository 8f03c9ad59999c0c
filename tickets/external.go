package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/govline/ivr/store"
)

// ExternalIdentity is a user authenticated by an external identity
// provider (the government's SAML 2.0 provider, MPass): the name, role and
// provider its assertion carries, already checked and mapped by the caller.
type ExternalIdentity struct {
	Name     string
	Role     Role
	Provider string
	// Method names how the user was authenticated ("saml"); it is the
	// detail of the "login" audit entry.
	Method string
}

// externalPassword is what the password column of an external account
// holds: no PHC string, so no password ever verifies against it.
const externalPassword = "!external"

var (
	// ErrReplayed is returned (wrapped) by UseAssertionID for an
	// assertion already accepted.
	ErrReplayed = errors.New("assertion already used")
	// ErrExternalRefused is returned (wrapped) by ExternalLogin when the
	// account may not sign in that way: disabled, a break-glass account,
	// or an unknown provider. The audit entry says which.
	ErrExternalRefused = errors.New("sign-in through the identity provider refused")
	// ErrNoProvider is returned (wrapped, with ErrExternalRefused) by
	// ExternalLogin for a provider that does not exist.
	ErrNoProvider = errors.New("no such provider")
)

// ExternalLogin opens a session for a user the identity provider
// authenticated, as Login does for a password (same session, same CSRF
// token, same lifetime p.SessionTTL), audited as "login" with detail
// id.Method. The account is created when it does not exist, as external
// (no usable password), with the role and provider of id; an external
// account's role and provider are updated to id's; a local account
// (with a password) becomes external, unless it is one of
// p.BreakGlass. Creations and changes are audited as "user_external"
// (actor id.Method, target the user). Refused, audited as
// "login_failed": a disabled account, a break-glass account, a provider
// that does not exist (ErrExternalRefused, wrapped; with ErrNoProvider for
// the provider), an invalid name or role (ErrInvalid).
func (s *Store) ExternalLogin(ctx context.Context, id ExternalIdentity, address string, p LoginPolicy) (Session, error) {
	p = p.withDefaults()
	if id.Method == "" {
		id.Method = "external"
	}
	now := s.now()
	fail := func(detail string) error {
		return s.Audit(ctx, AuditEntry{At: now, User: id.Name, Action: "login_failed", Detail: id.Method + ": " + detail, Address: address})
	}
	if err := checkUserName(id.Name); err != nil {
		return Session{}, fmt.Errorf("tickets: external login: %w", err)
	}
	if err := checkEnum("role", id.Role, Roles); err != nil {
		return Session{}, fmt.Errorf("tickets: external login: %w", err)
	}
	var sess Session
	var refused string
	login := func(tx *store.Tx) error {
		refused = ""
		if checkProviderID(id.Provider) != nil || providerExists(ctx, tx, id.Provider) != nil {
			refused = "unknown provider"
			return nil
		}
		cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`+s.db.ForUpdate(), id.Name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, password, created_ns, provider, external) VALUES (?, ?, ?, ?, ?, 1)`,
				id.Name, string(id.Role), externalPassword, now.UnixNano(), id.Provider); err != nil {
				return err // a unique violation: made by another engine meanwhile (tried again below)
			}
			if err := insertAudit(ctx, tx, AuditEntry{At: now, User: id.Method, Action: "user_external", Target: id.Name,
				Detail: "created: role " + string(id.Role) + ", provider " + id.Provider, OK: true}); err != nil {
				return err
			}
			cur = User{Name: id.Name, Role: id.Role, Provider: id.Provider, Lang: LangRomanian, Created: now, External: true}
		case err != nil:
			return err
		case cur.Disabled:
			refused = "account disabled"
			return nil
		case p.BreakGlass != nil && slices.Contains(p.BreakGlass, id.Name):
			refused = "break-glass account (signs in with its password only)"
			return nil
		case !cur.External || cur.Role != id.Role || cur.Provider != id.Provider:
			detail := "role " + string(id.Role) + ", provider " + id.Provider
			if !cur.External {
				detail = "converted from a local account (its password removed): " + detail
			} else {
				detail = "changed by the identity provider: " + detail
			}
			if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, provider = ?, external = 1, password = ?, failed = 0, locked_until = 0 WHERE name = ?`,
				string(id.Role), id.Provider, externalPassword, id.Name); err != nil {
				return err
			}
			if cur.Provider != id.Provider || cur.Role != id.Role {
				// Sessions opened with the old role or provider end.
				if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE "user" = ?`, id.Name); err != nil {
					return err
				}
			}
			if err := insertAudit(ctx, tx, AuditEntry{At: now, User: id.Method, Action: "user_external", Target: id.Name, Detail: detail, OK: true}); err != nil {
				return err
			}
			cur.Role, cur.Provider, cur.External = id.Role, id.Provider, true
		}
		sess, err = newSession(ctx, tx, cur, address, now, p, id.Method)
		return err
	}
	err := s.inTx(ctx, "external login", login)
	if store.IsUnique(err) {
		// Another engine made the account between our look and our
		// insert: it exists now.
		err = s.inTx(ctx, "external login", login)
	}
	if err != nil {
		return Session{}, wrapOp("external login", err)
	}
	if refused != "" {
		if err := fail(refused); err != nil {
			return Session{}, wrapOp("external login", err)
		}
		if refused == "unknown provider" {
			return Session{}, fmt.Errorf("tickets: external login: %s: %w (%w)", refused, ErrExternalRefused, ErrNoProvider)
		}
		return Session{}, fmt.Errorf("tickets: external login: %s: %w", refused, ErrExternalRefused)
	}
	return sess, nil
}

// UseAssertionID records that the identity provider's assertion id was
// accepted, until expires (after which the assertion is refused as expired
// anyway, and the record is dropped). It returns ErrReplayed (wrapped)
// when id was recorded before, by this engine or another sharing the
// database: each assertion signs a user in once.
func (s *Store) UseAssertionID(ctx context.Context, id string, expires time.Time) error {
	if id == "" || len(id) > 256 {
		return fmt.Errorf("tickets: use assertion: %w", invalid("assertion id", "want 1 to 256 characters"))
	}
	now := s.now()
	replayed := false
	err := s.inTx(ctx, "use assertion", func(tx *store.Tx) error {
		replayed = false
		if _, err := tx.ExecContext(ctx, `DELETE FROM saml_assertions WHERE expires_ns < ?`, now.UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO saml_assertions (id, expires_ns) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, expires.UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		replayed = n == 0
		return nil
	})
	if err != nil {
		return wrapOp("use assertion", err)
	}
	if replayed {
		return fmt.Errorf("tickets: assertion %w", ErrReplayed)
	}
	return nil
}
