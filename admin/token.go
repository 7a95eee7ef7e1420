package admin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// TokenFileName is the file EnsureToken keeps the admin token in.
const TokenFileName = "admin.token"

// maxTokenFile bounds a token file read: a token is a line.
const maxTokenFile = 4096

// EnsureToken returns the admin token kept in dir/admin.token, creating
// the file with a fresh random token (32 bytes, hex) and mode 0600 when
// it does not exist. created says whether it did. The file is written to
// a temporary name, synced and linked into place, so a crash leaves
// either no token file or a whole one, and two processes starting at once
// agree on one token.
func EnsureToken(dir string) (token, path string, created bool, err error) {
	path = filepath.Join(dir, TokenFileName)
	if t, err := LoadToken(path); err == nil {
		return t, path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, false, fmt.Errorf("admin: token directory: %w", err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", path, false, fmt.Errorf("admin: generating token: %w", err)
	}
	token = hex.EncodeToString(b[:])
	tmp, err := os.CreateTemp(dir, ".admin.token-*")
	if err != nil {
		return "", path, false, fmt.Errorf("admin: writing token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", path, false, fmt.Errorf("admin: writing token: %w", err)
	}
	_, err = tmp.WriteString(token + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", path, false, fmt.Errorf("admin: writing token: %w", err)
	}
	// Link, not rename: link fails when another process won the race,
	// and then its token is the one.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			t, err := LoadToken(path)
			return t, path, false, err
		}
		return "", path, false, fmt.Errorf("admin: writing token: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return token, path, true, nil
}

// LoadToken reads an admin token from a file: its first line, trimmed.
// A file that others than its owner may read or write is refused: the
// token gives every right over the quarantine.
func LoadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin: token file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: token file %s has mode %v; it must be readable by its owner only (chmod 600)",
			ErrConfig, path, st.Mode().Perm())
	}
	buf := make([]byte, maxTokenFile+1)
	n, _ := f.Read(buf)
	if n > maxTokenFile {
		return "", fmt.Errorf("%w: token file %s is over %d bytes", ErrConfig, path, maxTokenFile)
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	t := strings.TrimSpace(line)
	if len(t) < 16 {
		return "", fmt.Errorf("%w: token file %s holds %d characters; 16 at least", ErrConfig, path, len(t))
	}
	return t, nil
}

// HashPassword returns a bcrypt hash of a password for User.PasswordHash.
func HashPassword(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(b), err
}

func checkHash(hash string) error {
	_, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return fmt.Errorf("password hash: %w", err)
	}
	return nil
}
