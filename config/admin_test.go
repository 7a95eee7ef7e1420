package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func testHash(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestAdminUsers(t *testing.T) {
	h := testHash(t)
	c, err := Parse("x.yaml", []byte(fmt.Sprintf(`admin:
  secure_cookies: true
  users:
    - {name: alice, password_hash: %q, recipients: [alice@example.net, "@example.org"]}
    - {name: ops, password_hash: %q, admin: true}
`, h, h)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if !c.Admin.SecureCookies {
		t.Error("secure_cookies not read")
	}
	us := c.Admin.AdminUsers()
	if len(us) != 2 || us[0].Name != "alice" || us[0].PasswordHash != h || us[0].Admin || len(us[0].Recipients) != 2 ||
		us[0].Recipients[1] != "@example.org" || us[1].Name != "ops" || !us[1].Admin {
		t.Fatalf("AdminUsers: %+v", us)
	}
	// The mapping is a copy: changing it leaves the configuration alone.
	us[0].Recipients[0] = "mallory@example.net"
	if c.Admin.Users[0].Recipients[0] != "alice@example.net" {
		t.Error("AdminUsers shares the recipients slice")
	}
	// It survives -check-config's round trip.
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("again.yaml", b)
	if err != nil || len(back.Admin.Users) != 2 || back.Admin.Users[1].PasswordHash != h || !back.Admin.SecureCookies {
		t.Fatalf("round trip: %v %+v", err, back.Admin)
	}
	if d := Default(); d.Admin.SecureCookies || len(d.Admin.Users) != 0 {
		t.Errorf("the default has users or secure cookies: %+v", d.Admin)
	}
}

func TestAdminUsersRefused(t *testing.T) {
	h := testHash(t)
	user := func(name, hash string, admin bool, rcpts ...string) User {
		return User{Name: name, PasswordHash: hash, Admin: admin, Recipients: rcpts}
	}
	many := make([]string, MaxUserRecipients+1)
	for i := range many {
		many[i] = fmt.Sprintf("u%d@example.net", i)
	}
	tooMany := make([]User, MaxUsers+1)
	for i := range tooMany {
		tooMany[i] = user(fmt.Sprint("u", i), h, true)
	}
	for name, users := range map[string][]User{
		"no name":                {user("", h, true)},
		"a 257-byte name":        {user(strings.Repeat("n", 257), h, true)},
		"twice":                  {user("a", h, true), user("a", h, true)},
		"a plain password":       {user("a", "secret", true)},
		"an argon2 hash":         {user("a", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", true)},
		"not an address":         {user("a", h, false, "example.net")},
		"sees nothing":           {user("a", h, false)},
		"10,001 recipients":      {user("a", h, false, many...)},
		"10,001 users":           tooMany,
		"a 1,025-byte recipient": {user("a", h, false, strings.Repeat("r", 1013)+"@example.net")},
	} {
		c := Default()
		c.Admin.Users = users
		if err := c.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// At the limits: accepted.
	c := Default()
	c.Admin.Users = []User{user(strings.Repeat("n", 256), h, false, many[:MaxUserRecipients]...)}
	if err := c.Check(); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}
