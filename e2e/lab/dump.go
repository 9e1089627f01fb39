package lab

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// dumpCommands are run in every namespace by Dump.
var dumpCommands = []string{
	"ip -d link show",
	"ip addr show",
	"ip route show table all",
	"ip neigh show",
	"ip -s xfrm state",
	"ip -s xfrm policy",
	"ip tunnel show",
	"nft list ruleset",
	"ss -anp",
}

// dumpScript renders the shell script that writes ns's state to file.
func dumpScript(ns, file string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "mkdir -p %s\n{\n", shellQuote(file[:strings.LastIndex(file, "/")]))
	for _, c := range dumpCommands {
		full := c
		if ns != "" {
			full = "ip netns exec " + ns + " " + c
		}
		fmt.Fprintf(&b, "echo '### %s'\n%s 2>&1\n", c, full)
	}
	fmt.Fprintf(&b, "} > %s\n", shellQuote(file))
	return b.String()
}

// Dump writes every namespace's links, addresses, routes, neighbours, XFRM
// state and policies, nft ruleset and sockets, plus the process list and
// kernel log, under DIR/dump/, and returns the files written.
func (l *Lab) Dump(ctx context.Context) ([]string, error) {
	var files []string
	nss := []string{""}
	if topo := l.Topology(); l.topo != nil {
		nss = append(nss, topo.Namespaces()...)
	}
	var errs []string
	for _, ns := range nss {
		name := ns
		if name == "" {
			name = "root"
		}
		file := l.dir + "/dump/" + name + ".txt"
		if _, err := l.Run(ctx, dumpScript(ns, file)); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		files = append(files, file)
	}
	extra := l.dir + "/dump/system.txt"
	if _, err := l.Run(ctx, "{ echo '### ps'; ps -eo pid,ppid,stat,etime,args; echo '### ip netns'; ip netns list; echo '### dmesg'; dmesg | tail -n 200; } > "+shellQuote(extra)+" 2>&1"); err == nil {
		files = append(files, extra)
	} else {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return files, fmt.Errorf("lab: dump: %s", strings.Join(errs, "; "))
	}
	return files, nil
}

// DumpOnFailure runs Dump and logs where everything landed; New arranges
// for it to run when the test failed.
func (l *Lab) DumpOnFailure() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	files, err := l.Dump(ctx)
	if err != nil {
		l.t.Logf("lab: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lab: test failed; state collected in %s:\n", l.dir)
	for _, f := range files {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	fmt.Fprintf(&b, "  %s/nodes/*/  (process logs)\n", l.dir)
	if l.Mode() == ModeVM {
		fmt.Fprintf(&b, "  %s/console.log  (guest console)\n", l.dir)
	}
	l.t.Log(b.String())
}
