package gossip

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/weft-net/weft/internal/atomicfile"
)

// KeyIDLen is the length of a node key's id (NodeKeyID): the start of the key's SHA-256.
const KeyIDLen = 8

// NodeKeyID identifies a node's public key in its gossip meta.
func NodeKeyID(pub ed25519.PublicKey) [KeyIDLen]byte {
	sum := sha256.Sum256(pub)
	return [KeyIDLen]byte(sum[:KeyIDLen])
}

// LoadNodeKey reads the node's Ed25519 identity from path (the base64 of the 32-byte seed, mode
// 0600), creating it with a fresh key when the file does not exist. created says whether it did.
// A file that exists but does not hold a key is an error, never silently replaced: the key in the
// node's lease would no longer match.
func LoadNodeKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %s: %w", ErrInvalidNodeKey, path, err)
		}
		enc := base64.StdEncoding.EncodeToString(key.Seed()) + "\n"
		if err := atomicfile.Write(path, []byte(enc), 0o600); err != nil {
			return nil, false, fmt.Errorf("%w: %s: %w", ErrInvalidNodeKey, path, err)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalidNodeKey, err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, false, fmt.Errorf("%w: %s: want the base64 of a %d-byte Ed25519 seed", ErrInvalidNodeKey, path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), false, nil
}
