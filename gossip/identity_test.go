package gossip

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/weft-net/weft/subnet"
)

func TestLoadNodeKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	key, created, err := LoadNodeKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode())
	}
	again, created, err := LoadNodeKey(path)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatalf("restart: created %v, same key %v, %v", created, bytes.Equal(again, key), err)
	}
	for name, content := range map[string]string{
		"garbage": "not a key\n",
		"short":   "AAAA\n",
		"empty":   "",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadNodeKey(p); !errors.Is(err, ErrInvalidNodeKey) {
			t.Errorf("%s: %v, want ErrInvalidNodeKey (never a silent new key)", name, err)
		}
		if data, _ := os.ReadFile(p); string(data) != content {
			t.Errorf("%s: the bad file was rewritten", name)
		}
	}
}

// TestNodeKeySize: the lease's key field holds exactly an Ed25519 public key.
func TestNodeKeySize(t *testing.T) {
	if subnet.NodeKeySize != ed25519.PublicKeySize {
		t.Fatalf("subnet.NodeKeySize = %d, ed25519.PublicKeySize = %d", subnet.NodeKeySize, ed25519.PublicKeySize)
	}
}
