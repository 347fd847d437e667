package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// maxKeyFileSize bounds what readKeyFile reads; a real file holds a handful of 45-byte lines.
const maxKeyFileSize = 64 << 10

// readKeyFile loads the keys of a key file, primary first. It also reports whether the file is
// readable by group or others.
func readKeyFile(path string) (keys [][]byte, loose bool, err error) {
	bad := func(err error) error { return fmt.Errorf("%w: %s: %w", ErrInvalidKeyFile, path, err) }
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidKeyFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidKeyFile, err)
	}
	if !st.Mode().IsRegular() {
		return nil, false, bad(errors.New("not a regular file"))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, false, bad(err)
	}
	if len(data) > maxKeyFileSize {
		return nil, false, bad(fmt.Errorf("%d bytes or more, the limit is %d", len(data), maxKeyFileSize))
	}
	if keys, err = parseKeys(data); err != nil {
		return nil, false, bad(err)
	}
	return keys, st.Mode().Perm()&fs.FileMode(0o077) != 0, nil
}

// parseKeys parses a key file's content: one base64 key of 16, 24 or 32 bytes per line, the
// primary first; blank lines and lines starting with # are skipped. Errors name the line.
func parseKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	seen := map[string]bool{}
	for i, raw := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(raw)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		line := i + 1
		key, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64", line)
		}
		if err := memberlist.ValidateKey(key); err != nil {
			return nil, fmt.Errorf("line %d: key is %d bytes, want 16, 24 or 32", line, len(key))
		}
		if seen[string(key)] {
			return nil, fmt.Errorf("line %d: duplicate key", line)
		}
		seen[string(key)] = true
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key")
	}
	return keys, nil
}

// rotateKeyring makes the keyring hold exactly keys, with keys[0] as the primary key. New keys are
// installed before the primary is switched, and stale keys are removed last.
//
// Stale keys are removed from the end of the ring only. memberlist's RemoveKey shifts the ring's
// backing array in place, which races with a concurrent decryption that holds the same array
// unless the removed key is the last one. When a stale key sits before a key that stays, the keys
// behind it are removed and added back, which leaves them out for a few microseconds: a packet
// encrypted with one of them in that window is dropped, which gossip tolerates.
func rotateKeyring(kr *memberlist.Keyring, keys [][]byte) error {
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKeyFile, err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyFile, err)
	}
	wanted := func(k []byte) bool {
		return slices.ContainsFunc(keys, func(w []byte) bool { return bytes.Equal(w, k) })
	}
	ring := slices.Clone(kr.GetKeys())
	first := slices.IndexFunc(ring, func(k []byte) bool { return !wanted(k) })
	if first < 0 {
		return nil
	}
	var readd [][]byte
	for i := len(ring) - 1; i >= first; i-- {
		if wanted(ring[i]) {
			readd = append(readd, ring[i])
		}
		if err := kr.RemoveKey(ring[i]); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKeyFile, err)
		}
	}
	for _, k := range slices.Backward(readd) {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKeyFile, err)
		}
	}
	return nil
}
