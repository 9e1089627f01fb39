package ipsec

import (
	"fmt"
	"strings"
)

// CharonConf describes a charon dedicated to dmvpnd: the one the package
// ships (dmvpnd-charon.service, /etc/dmvpnd/strongswan.conf), and those the
// ipsec package's privileged tests and the e2e lab run, one per network
// namespace side by side, each with its own VICI socket and /run.
type CharonConf struct {
	// Socket is the VICI socket path.
	Socket string
	// Log is charon's log file; "" logs to stderr.
	Log string
	// LogLevel is the default log level (charon's -1..4).
	LogLevel int
	// Plugins is the explicit plugin list; nil means CharonPlugins.
	Plugins []string
	// Extra is appended inside the charon { } section.
	Extra string
}

// StrongswanConf renders the strongswan.conf for c: an explicit plugin list
// (load_modular = no, so never bypass-lan, whose bypass policies would let
// GRE between neighbours skip IPsec), no routes or virtual IPs installed by
// charon (routing is dmvpnd's), the private VICI socket for charon and
// swanctl, and a line-flushed log.
func StrongswanConf(c CharonConf) string {
	plugins := c.Plugins
	if plugins == nil {
		plugins = CharonPlugins
	}
	logName, logPath := "stderr", ""
	if c.Log != "" {
		logName, logPath = "log", "\t\t\tpath = "+c.Log+"\n"
	}
	return fmt.Sprintf(`# written by dmvpnd (ipsec.StrongswanConf)
charon {
	load_modular = no
	load = %[1]s
	install_routes = no
	install_virtual_ip = no
	threads = 8
	plugins {
		vici {
			socket = unix://%[2]s
		}
	}
	filelog {
		%[3]s {
%[4]s			time_format = %%T
			default = %[5]d
			ike_name = yes
			flush_line = yes
		}
	}
%[6]s}
swanctl {
	load = pem pkcs1 pkcs8 x509 pubkey random
	socket = unix://%[2]s
}
`, strings.Join(plugins, " "), c.Socket, logName, logPath, c.LogLevel, indent(c.Extra, "\t"))
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}
