package main

import (
	"regexp"
	"strings"
)

var (
	describeRE = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	hashRE     = regexp.MustCompile(`^([0-9a-f]{7,40})(-dirty)?$`)
	badRE      = regexp.MustCompile(`[^0-9A-Za-z.+~]+`)
)

// DebianVersion turns `git describe --tags --always --dirty` output into a
// native Debian version that sorts the same way:
//
//	v1.2.3             -> 1.2.3
//	v1.2.3-4-gabc1234  -> 1.2.3+4.gabc1234
//	abc1234-dirty      -> 0~git.abc1234.dirty (no tag yet: below any release)
//
// A bare hash is taken for an untagged commit even if it is all digits.
func DebianVersion(describe string) string {
	if m := hashRE.FindStringSubmatch(describe); m != nil {
		v := "0~git." + m[1]
		if m[2] != "" {
			v += ".dirty"
		}
		return v
	}
	if m := describeRE.FindStringSubmatch(describe); m != nil {
		v := m[1]
		if m[2] != "" {
			v += "+" + m[2] + ".g" + m[3]
		}
		if m[4] != "" {
			v += ".dirty"
		}
		return v
	}
	v := strings.Trim(badRE.ReplaceAllString(describe, "."), ".")
	if v == "" {
		return "0~dev"
	}
	return "0~" + v
}
