package storage

import (
	"strings"
	"unicode"
)

// Text search, as ArchiveQuery.Text defines it; every store, the shipped
// ones and an integrator's, matches with these functions:
//
//   - A word is a run of letters, digits and combining marks; anything
//     else separates words. Words compare case-insensitively (simple case
//     folding, so "STRASSE" is not "straße") and full-width ASCII is read
//     as ASCII.
//   - Han, Hiragana, Katakana and Hangul are written without spaces
//     between words, so each of their characters is a token of its own,
//     and a query word made of them matches wherever its characters
//     appear in a row: "午饭" finds "我们去吃午饭吧".
//   - A message matches when its Body holds every word of Text.

// Token is one searchable unit of a text: a folded word, or one CJK
// character. joined says that nothing separates it from the token before.
type Token struct {
	Term   string
	Joined bool
}

// Tokenize cuts s into tokens.
func Tokenize(s string) []Token {
	var (
		toks   []Token
		word   strings.Builder
		inWord bool
		joined bool // of the word being read
		adj    bool // the last rune was part of a token
	)
	flush := func() {
		if inWord {
			toks = append(toks, Token{word.String(), joined})
			word.Reset()
			inWord = false
		}
	}
	for _, r := range s {
		switch {
		case isCJK(r):
			flush()
			toks = append(toks, Token{string(fold(r)), adj})
			adj = true
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			if !inWord {
				inWord, joined = true, adj
			}
			word.WriteRune(fold(r))
			adj = true
		default:
			flush()
			adj = false
		}
	}
	flush()
	return toks
}

// QueryWords cuts text into query words, each a run of joined tokens.
func QueryWords(text string) [][]string {
	var words [][]string
	for _, t := range Tokenize(text) {
		if t.Joined && len(words) > 0 {
			words[len(words)-1] = append(words[len(words)-1], t.Term)
		} else {
			words = append(words, []string{t.Term})
		}
	}
	return words
}

// ContainsWord reports whether w's tokens appear in body in a row.
func ContainsWord(body []Token, w []string) bool {
	for i := 0; i+len(w) <= len(body); i++ {
		if body[i].Term != w[0] {
			continue
		}
		k := 1
		for k < len(w) && body[i+k].Joined && body[i+k].Term == w[k] {
			k++
		}
		if k == len(w) {
			return true
		}
	}
	return false
}

func isCJK(r rune) bool {
	if r < 0x1100 {
		return false
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) ||
		r == 'ー' || r == 'ｰ' // the prolonged sound mark, script Common
}

// fold maps r to its case-folded form: via upper case, so that ς and σ,
// ſ and s, and K (Kelvin) and k meet. Full-width ASCII becomes ASCII.
func fold(r rune) rune {
	if r >= '！' && r <= '～' {
		r -= '！' - '!'
	}
	return unicode.ToLower(unicode.ToUpper(r))
}
