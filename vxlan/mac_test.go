package vxlan

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/weft-net/weft/subnet"
)

func TestDeriveMAC(t *testing.T) {
	a := deriveMAC("node-1", 1)
	if a.String() != deriveMAC("node-1", 1).String() {
		t.Fatalf("derivation is not deterministic")
	}
	if err := subnet.CheckVtepMAC(a); err != nil {
		t.Fatalf("derived MAC %s: %v", a, err)
	}
	if a[0]&0x02 == 0 {
		t.Fatalf("derived MAC %s is not locally administered", a)
	}
	for _, other := range []string{deriveMAC("node-2", 1).String(), deriveMAC("node-1", 2).String()} {
		if other == a.String() {
			t.Fatalf("different node or VNI derived the same MAC %s", a)
		}
	}
}

func TestVtepMACPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := vtepMAC(dir, "weft.1", "node-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if first.String() != deriveMAC("node-1", 1).String() {
		t.Fatalf("first MAC %s, want the derived one", first)
	}
	data, err := os.ReadFile(filepath.Join(dir, "weft.1.mac"))
	if err != nil || string(data) != first.String()+"\n" {
		t.Fatalf("persisted %q (%v), want %q", data, err, first.String()+"\n")
	}
	// The persisted MAC wins over the derivation (the node was renamed).
	renamed, err := vtepMAC(dir, "weft.1", "node-1-renamed", 1)
	if err != nil || renamed.String() != first.String() {
		t.Fatalf("after rename: %s (%v), want %s", renamed, err, first)
	}
	// Without a node name the MAC is random but still persisted and then stable.
	random, err := vtepMAC(dir, "weft.2", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := subnet.CheckVtepMAC(random); err != nil || random[0]&0x02 == 0 {
		t.Fatalf("random MAC %s: %v", random, err)
	}
	again, err := vtepMAC(dir, "weft.2", "", 2)
	if err != nil || again.String() != random.String() {
		t.Fatalf("random MAC not stable: %s then %s (%v)", random, again, err)
	}
	// Without a state dir the derivation alone keeps it stable.
	derived, err := vtepMAC("", "weft.1", "node-9", 1)
	if err != nil || derived.String() != deriveMAC("node-9", 1).String() {
		t.Fatalf("stateless MAC %s (%v)", derived, err)
	}
}

func TestVtepMACBadFile(t *testing.T) {
	for _, content := range []string{"", "garbage\n", "ff:ff:ff:ff:ff:ff\n", "00:00:00:00:00:00\n", "01:00:5e:00:00:01\n", "02:00:00:00:00:01:02:03\n"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "weft.1.mac"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := vtepMAC(dir, "weft.1", "node-1", 1); !errors.Is(err, ErrBadMACFile) {
			t.Errorf("content %q: err %v, want ErrBadMACFile", content, err)
		}
	}
}

func FuzzParseMACFile(f *testing.F) {
	for _, seed := range []string{"02:aa:bb:cc:dd:ee\n", "02-aa-bb-cc-dd-ee", "0000.0000.0001", "ff:ff:ff:ff:ff:ff", "", "\n\n", "02:aa:bb:cc:dd:ee:ff:00"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mac, err := parseMACFile(data)
		if err != nil {
			if !errors.Is(err, ErrBadMACFile) {
				t.Fatalf("error %v does not wrap ErrBadMACFile", err)
			}
			return
		}
		if err := subnet.CheckVtepMAC(mac); err != nil {
			t.Fatalf("accepted unusable MAC %s: %v", mac, err)
		}
		back, err := parseMACFile([]byte(mac.String() + "\n"))
		if err != nil || back.String() != mac.String() {
			t.Fatalf("round trip of %s: %s, %v", mac, back, err)
		}
	})
}
