package literal

import "strings"

// rarity scores a key for how seldom ordinary text holds it, the higher
// the rarer, on keyScore's scale: its length, plus 2 for a byte that
// prose seldom has ("$", "@", "&#"; not the punctuation of every
// sentence), and no more than 2 when the key is only words of the
// commonest few hundred of English (and of the other languages
// SpamAssassin's rules name) with spaces and sentence punctuation: " of",
// "the ", "has been" are on most lines of most mail, so a rule keyed on
// them runs on every line anyway, while its other candidate keys ("widow",
// "account") would have kept it off most of them.
func rarity(k string) int {
	if k == "" {
		return 0
	}
	n := len(k)
	for i := 0; i < len(k); i++ {
		if c := k[i]; c > ' ' && c < 0x7f && !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && !strings.ContainsRune(commonPunct, rune(c)) {
			n += 2
			break
		}
	}
	if commonOnly(k) {
		return min(n, 2)
	}
	return n
}

// commonPunct is the punctuation of ordinary sentences.
const commonPunct = ".,;:!?'\"()-/"

// commonOnly reports whether k is made of common words, white space and
// sentence punctuation alone (a word cut at the key's edge counts as the
// word it may be part of only when it is whole: "ccount" is not common).
func commonOnly(k string) bool {
	words := strings.FieldsFunc(k, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || strings.ContainsRune(commonPunct, r)
	})
	for _, w := range words {
		if !commonWords[w] {
			return false
		}
	}
	return true
}

// commonWords are the commonest words of English mail, and the short
// function words of the other languages SpamAssassin's rules match.
var commonWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
a about after again all also am an and any are as at be because been before being but by can could
did do does dont each for from further get got had has have he her here him his how i if in into is
it its just like may me more most my no not now of on one only or other our out over please same she
should so some such than that the their them then there these they this those through to too under
until up us very was way we were what when where which while who why will with would you your yours
new now see use make know time day first last next free here back well just also get
de la le les des du un une et en est pour que qui dans par sur au aux ce il elle nous vous
der die das den dem des ein eine und ist zu im mit von auf sie ich du er es nicht
el los las del y o es por con para una lo se su
do da dos das em um uma os as no na e meu
`) {
		m[w] = true
	}
	return m
}()

// Rarity is the rarity of a key set: that of its commonest key, 0 for
// none. Of two sets, the one with the higher rarity passes fewer texts.
func Rarity(keys []string) int { return ranker{rarity}.score(keys) }
