package vxlan

import (
	"errors"
	"strconv"
	"testing"
)

func TestWantTxChecksum(t *testing.T) {
	tests := []struct {
		mode, release string
		want          bool
		wantErr       bool
	}{
		{"auto", "4.19.0-21-amd64", false, false},
		{"auto", "5.4.0-150-generic", false, false},
		{"auto", "5.6.19", false, false},
		{"auto", "5.7.0", true, false},
		{"auto", "5.10.0-cloud", true, false},
		{"auto", "6.18.44-fc-v782", true, false},
		{"auto", "3.10.0-1160.el7.x86_64", false, false},
		{"on", "4.19.0", true, false},
		{"off", "6.1.0", false, false},
		{"on", "garbage", true, false},
		{"auto", "garbage", false, true},
		{"auto", "6", false, true},
		{"auto", ".7", false, true},
	}
	for _, tt := range tests {
		got, err := wantTxChecksum(tt.mode, tt.release)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("wantTxChecksum(%q, %q) = %t, %v; want %t, error %t", tt.mode, tt.release, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrKernelRelease) {
			t.Errorf("error %v does not wrap ErrKernelRelease", err)
		}
	}
}

func FuzzParseKernelRelease(f *testing.F) {
	for _, seed := range []string{"6.18.44-fc-v782", "5.7", "5.4.0-150-generic", "4.19.0+", "", ".", "5.", "x.y", "-1.2", "99999999999999999999.1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, release string) {
		major, minor, err := parseKernelRelease(release)
		if err != nil {
			if !errors.Is(err, ErrKernelRelease) {
				t.Fatalf("error %v does not wrap ErrKernelRelease", err)
			}
			return
		}
		if major < 0 || minor < 0 {
			t.Fatalf("%q parsed to negative %d.%d", release, major, minor)
		}
		prefix := strconv.Itoa(major) + "." + strconv.Itoa(minor)
		again, againMinor, err := parseKernelRelease(prefix)
		if err != nil || again != major || againMinor != minor {
			t.Fatalf("%q -> %d.%d, but %q -> %d.%d %v", release, major, minor, prefix, again, againMinor, err)
		}
	})
}
