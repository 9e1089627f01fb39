package lab

import "testing"

func TestFRRDaemonArgs(t *testing.T) {
	got := frrDaemonArgs("nhrpd", "hub")
	want := "/usr/lib/frr/nhrpd -N hub -f /etc/frr/hub/nhrpd.conf -i /var/run/frr/hub/nhrpd.pid -u frr -g frr --log stdout"
	if got != want {
		t.Errorf("frrDaemonArgs = %q, want %q", got, want)
	}
}
