package files

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxNameBytes caps a sanitised file name. Names never reach the file
// system (blobs are stored under their random ID), but they travel in URLs,
// headers and chat messages, and 200 bytes keeps all of those reasonable
// while leaving room for a long descriptive name.
const maxNameBytes = 200

// maxExtBytes is the longest suffix still treated as an extension worth
// keeping when a name is shortened.
const maxExtBytes = 16

// SanitizeName turns a client-supplied file name into one that is safe to
// show, put in a URL path segment and a Content-Disposition header:
//
//   - only the last path element is kept, with both / and \ as separators,
//     so "../../etc/passwd" becomes "passwd" and "..\..\x" becomes "x";
//   - invalid UTF-8 is replaced, the result is NFC-normalised;
//   - control characters (NUL included) and the bidirectional overrides
//     that make "invoice‮fdp.exe" look like a PDF are removed;
//   - characters Windows forbids in names (<>:"|?*) become "_";
//   - leading dots and spaces (hidden files, "." and "..") and trailing
//     dots and spaces (which Windows silently drops, turning "x.exe." into
//     "x.exe") are trimmed;
//   - Windows device names (CON, NUL, COM1, ...) get a "_" prefix;
//   - the result is cut to 200 bytes at a character boundary, keeping the
//     extension.
//
// An empty result becomes "file". SanitizeName is a pure function, safe
// for concurrent use.
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = norm.NFC.String(name)
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		switch {
		case r == utf8.RuneError:
			b.WriteByte('_')
		case unicode.IsControl(r), isBidiControl(r):
			// dropped: invisible and only ever useful to deceive
		case strings.ContainsRune(`<>:"|?*`, r):
			b.WriteByte('_')
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.Trim(b.String(), ". ")
	if name == "" {
		return "file"
	}
	if isWindowsDevice(name) {
		name = "_" + name
	}
	if len(name) > maxNameBytes {
		name = shorten(name, maxNameBytes)
	}
	return name
}

// shorten cuts name to at most max bytes, keeping a short extension.
func shorten(name string, max int) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= maxExtBytes {
		ext = name[i:]
	}
	stem := name[:len(name)-len(ext)]
	limit := max - len(ext)
	for len(stem) > limit {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	stem = strings.TrimRight(stem, ". ")
	if stem == "" {
		stem = "file"
	}
	return stem + ext
}

func isBidiControl(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// isWindowsDevice reports whether name, or its stem before the first dot,
// is one of the names Windows reserves for devices ("nul.txt" is NUL too).
func isWindowsDevice(name string) bool {
	stem := name
	if i := strings.IndexByte(stem, '.'); i >= 0 {
		stem = stem[:i]
	}
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) == 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) {
		return stem[3] >= '0' && stem[3] <= '9'
	}
	return false
}

// DefaultBlacklist returns the extension list used when Config.Blacklist
// is nil (a fresh copy each call): programs and scripts that Windows, macOS or a desktop shell runs
// when the recipient double-clicks them, and server-side scripts a web
// server might execute if the file were ever copied under its document
// root. Markup (html, htm, svg, xml) is deliberately not on it: people
// share HTML reports and SVG diagrams, and Parley never renders those
// inline (they are always served as downloads), so they cannot run script
// in the host's origin. A host that wants them refused adds them.
func DefaultBlacklist() []string {
	return []string{
		// Windows programs, installers and shell scripts
		"exe", "com", "scr", "pif", "cpl", "msi", "msp", "mst", "dll", "sys",
		"bat", "cmd", "ps1", "psm1", "vbs", "vbe", "js", "jse", "wsf", "wsh",
		"hta", "lnk", "reg", "scf", "inf", "appref-ms", "application", "gadget",
		"msc", "jar",
		// macOS and Unix
		"app", "command", "sh", "csh", "ksh", "bash", "run", "pkg", "dmg",
		// server-side scripts
		"php", "php3", "php4", "php5", "phtml", "phar", "asp", "aspx", "jsp", "cgi", "pl",
	}
}

// Blocked reports whether name has an extension on blacklist. The check
// is case-insensitive and looks at every extension, not only the last:
// "invoice.pdf.exe" is blocked for its last extension, "x.php.jpg" for the
// inner one, because Apache's AddHandler runs any file with .php anywhere
// in its name and a file shared in chat may end up on such a server. The
// price is that "shop.com.pdf" is refused while "com" is listed; a host
// that minds takes "com" off its list. Trailing dots and spaces are
// ignored (Windows drops them, so "x.exe." is an .exe) and only the last
// path element counts. Entries may be given with or without the leading
// dot.
//
// Blocked is shared by every part of Parley that accepts files (chat
// uploads, meeting files); it is a pure function, safe for concurrent use.
func Blocked(name string, blacklist []string) bool {
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToLower(strings.TrimRight(name, ". \t"))
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return false
	}
	for _, ext := range parts[1:] {
		ext = strings.TrimSpace(ext)
		if ext == "" {
			continue
		}
		for _, bad := range blacklist {
			if strings.EqualFold(ext, strings.TrimPrefix(strings.TrimSpace(bad), ".")) {
				return true
			}
		}
	}
	return false
}
