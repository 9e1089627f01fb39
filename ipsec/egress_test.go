package ipsec_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// watchEgress counts what leaves dev on the wire (nftables netdev egress
// hook, after XFRM): cleartext GRE, ESP and ESP-in-UDP. It reports false
// if the kernel or nft lacks the egress hook.
func (n *node) watchEgress(dev string) bool {
	rules := "add table netdev ipsecwatch\n" +
		"add chain netdev ipsecwatch eg { type filter hook egress device \"" + dev + "\" priority 0; }\n" +
		"add rule netdev ipsecwatch eg meta protocol ip ip protocol gre counter comment \"gre\"\n" +
		"add rule netdev ipsecwatch eg meta protocol ip ip protocol esp counter comment \"esp\"\n" +
		"add rule netdev ipsecwatch eg meta protocol ip udp sport 4500 counter comment \"natt\"\n"
	cmd := exec.Command("ip", "netns", "exec", n.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Logf("%s: no egress hook (%v: %s); skipping the on-the-wire check", n.ns, err, out)
		return false
	}
	return true
}

var counterLine = regexp.MustCompile(`counter packets (\d+) bytes \d+ comment "(\w+)"`)

// egress returns the egress counters by name (gre, esp, natt).
func (n *node) egress() map[string]int {
	out, err := exec.Command("ip", "netns", "exec", n.ns, "nft", "list", "table", "netdev", "ipsecwatch").CombinedOutput()
	if err != nil {
		n.t.Fatalf("nft list: %v %s", err, out)
	}
	got := map[string]int{}
	for _, m := range counterLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.Atoi(m[1])
		got[m[2]] = v
	}
	return got
}
