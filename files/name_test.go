package files

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"photo.jpg", "photo.jpg"},
		{"../../etc/passwd", "passwd"},
		{`..\..\x`, "x"},
		{`C:\Users\me\report.pdf`, "report.pdf"},
		{"/abs/path/file.txt", "file.txt"},
		{"a\x00b.txt", "ab.txt"},
		{"line\nbreak\r.txt", "linebreak.txt"},
		{"tab\there.txt", "tabhere.txt"},
		{"..", "file"},
		{".", "file"},
		{"", "file"},
		{"...", "file"},
		{".hidden", "hidden"},
		{"trailing. . ", "trailing"},
		{"x.exe.", "x.exe"},
		{"  spaced  .txt", "spaced  .txt"},
		{"what?.txt", "what_.txt"},
		{`a<b>c:d"e|f*.txt`, "a_b_c_d_e_f_.txt"},
		{"invoice\u202efdp.exe", "invoicefdp.exe"},
		{"e\u0301te\u0301.txt", "été.txt"}, // NFD in, NFC out
		{"CON", "_CON"},
		{"nul.txt", "_nul.txt"},
		{"com1.log", "_com1.log"},
		{"console.txt", "console.txt"},
		{"bad\xffutf8.txt", "bad_utf8.txt"},
		{"日本語のファイル.docx", "日本語のファイル.docx"},
		{"no\u00a0break.txt", "no break.txt"},
	} {
		if got := SanitizeName(tc.in); got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSanitizeNameLong(t *testing.T) {
	long := strings.Repeat("a", 500) + ".tar.gz"
	got := SanitizeName(long)
	if len(got) > maxNameBytes || !strings.HasSuffix(got, ".gz") {
		t.Errorf("%d bytes, %q", len(got), got[len(got)-10:])
	}
	// multi-byte characters are not cut in half
	got = SanitizeName(strings.Repeat("😀", 100) + ".png")
	if !utf8.ValidString(got) || len(got) > maxNameBytes || !strings.HasSuffix(got, ".png") {
		t.Errorf("emoji name: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	// an over-long "extension" is not kept at the expense of the name
	got = SanitizeName("name." + strings.Repeat("x", 300))
	if len(got) > maxNameBytes || !strings.HasPrefix(got, "name.") {
		t.Errorf("long extension: %q", got)
	}
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"../../etc/passwd", `..\x`, "a\x00b", "CON", "x.exe. ", "\u202e", strings.Repeat("é", 150)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SanitizeName(in)
		if got == "" || len(got) > maxNameBytes || !utf8.ValidString(got) {
			t.Fatalf("SanitizeName(%q) = %q", in, got)
		}
		if strings.ContainsAny(got, "/\\<>:\"|?*") || got[0] == '.' || got == ".." {
			t.Fatalf("SanitizeName(%q) = %q has a forbidden character", in, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || isBidiControl(r) {
				t.Fatalf("SanitizeName(%q) = %q has control %U", in, got, r)
			}
		}
		if !norm.NFC.IsNormalString(got) && len(got) < maxNameBytes-8 {
			t.Fatalf("SanitizeName(%q) = %q is not NFC", in, got)
		}
		if again := SanitizeName(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, got, again)
		}
	})
}

func TestBlocked(t *testing.T) {
	list := DefaultBlacklist()
	for name, want := range map[string]bool{
		"setup.exe": true, "SETUP.EXE": true, "Setup.Exe": true, "invoice.pdf.exe": true,
		"x.php.jpg": true, "x.PhP.jpg": true, "archive.tar.gz": false, "report.pdf": false,
		"evil.exe.": true, "evil.exe ": true, "evil.exe . .": true, `dir\evil.bat`: true,
		"dir/evil.bat": true, "exe": false, ".exe": true, "noext": false, "a..exe": true,
		"page.html": false, "image.svg": false, "script.js": true, "photo.jpeg": false,
		"shop.com.pdf": true, // the documented price of checking inner extensions
	} {
		if got := Blocked(name, list); got != want {
			t.Errorf("Blocked(%q) = %v, want %v", name, got, want)
		}
	}
	if !Blocked("a.HTML", []string{".html"}) || !Blocked("a.html", []string{" HTML "}) {
		t.Error("list entries with dots, spaces or capitals")
	}
	if Blocked("a.exe", nil) {
		t.Error("nil list blocks")
	}
}
