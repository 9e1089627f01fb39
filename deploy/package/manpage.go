package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"time"
)

// configKey is one row of the configuration reference in deploy/README.md,
// the table deploy's TestReferenceDocumentsEveryKey keeps equal to
// config.Keys().
type configKey struct {
	key, def, meaning string
}

// referenceTable reads the configuration reference: the rows of the table
// under "## Configuration reference", and the prose before it.
func referenceTable(readme []byte) (intro []string, keys []configKey, err error) {
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "## ") {
			in = l == "## Configuration reference"
			continue
		}
		if !in {
			continue
		}
		rest, ok := strings.CutPrefix(l, "| `")
		if !ok {
			if !strings.HasPrefix(l, "|") {
				intro = append(intro, l)
			}
			continue
		}
		cells := strings.Split("| `"+rest, "|")
		if len(cells) < 5 {
			return nil, nil, fmt.Errorf("reference row %q: want 3 cells", l)
		}
		keys = append(keys, configKey{key: md(cells[1]), def: md(cells[2]), meaning: md(cells[3])})
	}
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("no configuration reference table in the README")
	}
	return intro, keys, sc.Err()
}

// md strips the Markdown the table uses (code spans) and surrounding space.
func md(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, "`", "")) }

// roff escapes text for a troff body line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// ConfigManPage renders dmvpnd.yaml(5) from the README's reference.
func ConfigManPage(readme []byte, version string, date time.Time) ([]byte, error) {
	intro, keys, err := referenceTable(readme)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH \"DMVPND.YAML\" \"5\" \"%s\" \"dmvpnd %s\" \"dmvpnd manual\"\n", date.Format("Jan 2006"), roff(version))
	b.WriteString(".SH NAME\ndmvpnd.yaml \\- dmvpnd configuration file\n")
	b.WriteString(".SH SYNOPSIS\n/etc/dmvpnd/dmvpnd.yaml\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString("One YAML file describes one dmvpnd node, a hub or a spoke. Check a file with\n" +
		".B dmvpnd \\-\\-check\n.BR \\-\\-config " + "\\fIFILE\\fR; apply a changed file with\n" +
		".BR \"dmvpnctl reload \\-\\-wait\" ,\nwhich lists every changed key and whether it was applied or needs a restart.\n" +
		"Annotated examples are in\n.IR /etc/dmvpnd/examples/ .\n.PP\n")
	para := false
	for _, l := range intro {
		l = strings.TrimSpace(l)
		if l == "" {
			if para {
				b.WriteString(".PP\n")
				para = false
			}
			continue
		}
		b.WriteString(roff(md(l)) + "\n")
		para = true
	}
	b.WriteString(".SH KEYS\n")
	for _, k := range keys {
		fmt.Fprintf(&b, ".TP\n.B %s\n", roff(k.key))
		line := roff(k.meaning)
		if k.def != "" {
			line += " (default: " + roff(k.def) + ")"
		}
		b.WriteString(line + "\n")
	}
	b.WriteString(".SH FILES\n.TP\n.I /etc/dmvpnd/dmvpnd.yaml\nthe configuration read by the dmvpnd service\n" +
		".TP\n.I /etc/dmvpnd/examples/\nexample hub and spoke configurations\n")
	b.WriteString(".SH SEE ALSO\n.BR dmvpnd (8),\n.BR dmvpnctl (8),\n.BR swanctl.conf (5)\n")
	return []byte(b.String()), nil
}
