package ipsec

// Everything specific to strongSwan's charon (command and event names,
// swanctl keywords, algorithm names, plugin lists, file locations) lives in
// this file.

import "strings"

// DefaultSocketPath is charon's default VICI socket.
const DefaultSocketPath = "/var/run/charon.vici"

// CharonBinary is where Debian installs the IKE daemon.
const CharonBinary = "/usr/lib/ipsec/charon"

// CharonPlugins is the plugin set a dedicated charon for dmvpnd needs
// (StrongswanConf renders its strongswan.conf): VICI,
// the kernel XFRM backend, sockets, X.509/PEM/PKCS#1/PKCS#8 parsing, and
// crypto (kdf is required since 5.9.8: IKEv2 key derivation goes through
// KDF_PRF and KDF_PRF_PLUS). Crypto plugins missing on a host are skipped by charon
// ("failed to load"), and the Manager only offers default proposals whose
// algorithms charon reports (get-algorithms). bypass-lan is deliberately
// absent: its bypass policies for connected subnets would let GRE between
// neighbours skip IPsec.
var CharonPlugins = []string{
	"random", "nonce", "drbg", "openssl", "aes", "gcm", "sha1", "sha2", "hmac", "kdf", "gmp", "curve25519",
	"pem", "pkcs1", "pkcs8", "x509", "pubkey", "revocation", "constraints",
	"kernel-netlink", "socket-default", "vici",
}

// VICI commands used by the Manager.
const (
	cmdVersion       = "version"
	cmdGetAlgorithms = "get-algorithms"
	cmdLoadConn      = "load-conn"
	cmdUnloadConn    = "unload-conn"
	cmdGetConns      = "get-conns"
	cmdInitiate      = "initiate"
	cmdTerminate     = "terminate"
	cmdLoadShared    = "load-shared"
	cmdLoadCert      = "load-cert"
	cmdLoadKey       = "load-key"
	cmdListSAs       = "list-sas"
	evListSA         = "list-sa"
	cmdListConns     = "list-conns"
	evListConn       = "list-conn"
	cmdListCerts     = "list-certs"
	evListCert       = "list-cert"
	cmdGetShared     = "get-shared"
	cmdGetKeys       = "get-keys"
)

// VICI events the Manager subscribes to.
const (
	evIKEUpdown   = "ike-updown"
	evChildUpdown = "child-updown"
	evIKERekey    = "ike-rekey"
	evChildRekey  = "child-rekey"
)

var subscribedEvents = []string{evIKEUpdown, evChildUpdown, evIKERekey, evChildRekey}

// Names of the connections and children dmvpnd loads. Everything dmvpnd
// loads starts with connPrefix, so that after a restart it unloads only
// what it created.
const (
	connPrefix       = "dmvpn-"
	responderConn    = connPrefix + "responder"
	childName        = "gre"
	natChildName     = "gre-nat"
	uniqueNever      = "never"   // no uniqueness by identity (the responder with Config.MarkNAT)
	markUnique       = "%unique" // swanctl.conf: a mark of its own per CHILD_SA
	markSame         = "%same"   // set_mark_in: the value of mark_in
	pskID            = connPrefix + "psk"
	ikeStateUp       = "ESTABLISHED"
	childStateUp     = "INSTALLED"
	childModeTunnel  = "TUNNEL"
	greSelector      = "[gre]"
	dynamicSelector  = "dynamic" + greSelector
	uniqueReplace    = "replace"
	defaultDPDDelay  = "30s"
	nonblockingParam = "-1" // initiate/terminate timeout: return at once
)

// Default proposals, most preferred first. A default proposal is offered
// only when charon implements all of its algorithms (get-algorithms): the
// modern AEAD/ECP suites need the openssl (or gcm) plugin, the last entry
// works with the base plugins (aes, sha2, hmac, gmp) alone. Every entry uses
// AES-256 and a DH group of at least 128-bit strength. ESP uses AES-GCM-256
// (done by the kernel) with PFS on rekeying.
var (
	DefaultIKEProposals = []string{
		"aes256gcm16-prfsha384-ecp384",
		"aes256gcm16-prfsha256-curve25519",
		"aes256-sha384-modp3072",
	}
	DefaultESPProposals = []string{
		"aes256gcm16-ecp384",
		"aes256gcm16-curve25519",
		"aes256gcm16-modp3072",
	}
)

// keywordAlgs maps proposal keywords used in the defaults to the
// get-algorithms section and name that implement them. "" marks algorithms
// the kernel implements for ESP (no charon plugin needed).
var keywordAlgs = map[string][2]string{
	"aes256gcm16": {"aead", "AES_GCM_16"},
	"aes256":      {"encryption", "AES_CBC"},
	"prfsha384":   {"prf", "PRF_HMAC_SHA2_384"},
	"prfsha256":   {"prf", "PRF_HMAC_SHA2_256"},
	"sha384":      {"integrity", "HMAC_SHA2_384_192"},
	"ecp384":      {"dh", "ECP_384"},
	"curve25519":  {"dh", "CURVE_25519"},
	"modp3072":    {"dh", "MODP_3072"},
}

// algorithms is what charon reports in get-algorithms: section -> names.
// charon 5.9 calls the key exchange section "dh", 6.x "ke"; both are read.
type algorithms map[string]map[string]bool

func (a algorithms) has(section, name string) bool {
	if a[section][name] {
		return true
	}
	if section == "dh" {
		return a["ke"][name]
	}
	return false
}

// supported reports whether charon implements every algorithm of proposal.
// For ESP, the cipher is the kernel's business; only the DH group (PFS on
// rekey) needs charon.
func (a algorithms) supported(proposal string, esp bool) bool {
	for _, kw := range strings.Split(proposal, "-") {
		alg, ok := keywordAlgs[kw]
		if !ok {
			return false
		}
		if esp && alg[0] != "dh" {
			continue
		}
		if !a.has(alg[0], alg[1]) {
			return false
		}
	}
	return true
}

// filterProposals keeps the proposals charon can serve. If none is left it
// returns all of them, so that the failure shows up in charon's log rather
// than as an empty proposal list.
func (a algorithms) filter(props []string, esp bool) []string {
	var out []string
	for _, p := range props {
		if a.supported(p, esp) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return append([]string(nil), props...)
	}
	return out
}
