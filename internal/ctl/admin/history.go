package admin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/weft-net/weft/internal/ctl/cli"
	"github.com/weft-net/weft/subnet"
	weftetcd "github.com/weft-net/weft/subnet/etcd"
)

// historyView is a subnet key's history in JSON and YAML output.
type historyView struct {
	Key string `json:"key"`
	// Since is the oldest revision etcd keeps; Compacted tells whether older ones are gone.
	Since     int64              `json:"since"`
	Compacted bool               `json:"compacted"`
	Revision  int64              `json:"revision"`
	Entries   []historyEntryView `json:"entries"`
}

type historyEntryView struct {
	Revision int64 `json:"revision"`
	// Event is acquired (a new holder), updated (the same holder's value changed), deleted, or
	// malformed (a value that does not parse).
	Event      string     `json:"event"`
	Node       string     `json:"node,omitempty"`
	PublicIP   string     `json:"publicIP,omitempty"`
	VtepMAC    string     `json:"vtepMAC,omitempty"`
	AcquiredAt *time.Time `json:"acquiredAt,omitempty"`
	Reserved   bool       `json:"reserved,omitempty"`
	EtcdLease  string     `json:"etcdLease,omitempty"`
	Malformed  string     `json:"malformed,omitempty"`
}

func newHistoryView(h weftetcd.SubnetHistory) historyView {
	v := historyView{Key: h.Key, Since: h.Since, Compacted: h.Since > 1, Revision: h.Revision, Entries: []historyEntryView{}}
	prev := "\x00"
	for _, e := range h.Entries {
		ev := historyEntryView{Revision: e.Revision}
		switch {
		case e.Deleted:
			ev.Event, prev = "deleted", "\x00"
		case e.Err != nil:
			ev.Event, ev.Malformed, prev = "malformed", e.Err.Error(), "\x00"
			// A value with a bad field still yields the fields that decode.
			id, _ := subnet.ReadLeaseIdentity(e.Value)
			ev.Node = id.NodeName
			if ip := id.Addr(); ip.IsValid() {
				ev.PublicIP = ip.String()
			}
		default:
			a := e.Attrs
			holder := a.NodeName
			if holder == "" {
				holder = "flannel@" + a.PublicIP.String()
			}
			ev.Event = "acquired"
			if holder == prev {
				ev.Event = "updated"
			}
			prev = holder
			ev.Node, ev.PublicIP, ev.VtepMAC = a.NodeName, a.PublicIP.String(), a.VtepMAC.String()
			if !a.AcquiredAt.IsZero() {
				t := a.AcquiredAt.UTC()
				ev.AcquiredAt = &t
			}
		}
		if !e.Deleted {
			ev.Reserved = e.EtcdLease == 0
			if e.EtcdLease != 0 {
				ev.EtcdLease = fmt.Sprintf("%x", e.EtcdLease)
			}
		}
		v.Entries = append(v.Entries, ev)
	}
	return v
}

func runLeasesHistory(ctx context.Context, env *cli.Env, fs *flag.FlagSet, args []string) error {
	sn, s, out, err := subnetListCommand(env, fs, args)
	if err != nil {
		return err
	}
	defer s.Close()
	var h weftetcd.SubnetHistory
	if err := s.Do(ctx, func(ctx context.Context) error {
		h, err = s.M.History(ctx, sn)
		return err
	}); err != nil {
		return err
	}
	v := newHistoryView(h)
	if out.Structured() {
		return out.Encode(env.Stdout, v)
	}
	return writeHistory(env.Stdout, v, out == cli.FormatWide)
}

func writeHistory(w io.Writer, v historyView, wide bool) error {
	if v.Compacted {
		fmt.Fprintf(w, "%s, revisions %d to %d: etcd compacted the revisions before %d, earlier holders are gone.\n", v.Key, v.Since, v.Revision, v.Since)
		if len(v.Entries) > 0 && v.Entries[0].Revision < v.Since {
			fmt.Fprintf(w, "The first row is the value in force at revision %d, written at %d.\n", v.Since, v.Entries[0].Revision)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "%s, revisions 1 to %d: etcd has compacted nothing, this is the whole history.\n\n", v.Key, v.Revision)
	}
	if len(v.Entries) == 0 {
		fmt.Fprintln(w, "No writes: nobody held the subnet in these revisions.")
		return nil
	}
	header := []string{"REVISION", "EVENT", "NODE", "PUBLIC-IP", "VTEP-MAC", "ACQUIRED-AT", "KIND"}
	if wide {
		header = append(header, "ETCD-LEASE")
	}
	t := cli.NewTable(w, header...)
	for _, e := range v.Entries {
		var acquired, kind string
		if e.AcquiredAt != nil {
			acquired = e.AcquiredAt.Format(time.RFC3339)
		}
		switch {
		case e.Event == "deleted":
		case e.Reserved:
			kind = "reservation"
		default:
			kind = "lease"
		}
		node := e.Node
		if node == "" && e.PublicIP != "" && e.Malformed == "" {
			node = "(flannel)"
		}
		event := e.Event
		if e.Malformed != "" {
			event += " (!)"
		}
		cells := []string{fmt.Sprint(e.Revision), event, node, e.PublicIP, e.VtepMAC, acquired, kind}
		if wide {
			cells = append(cells, e.EtcdLease)
		}
		t.Row(cells...)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	for _, e := range v.Entries {
		if e.Malformed != "" {
			fmt.Fprintf(w, "(!) revision %d: %s\n", e.Revision, e.Malformed)
		}
	}
	return nil
}
