package pstate

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScanner reads the API's JSON in one pass, left to right, without
// building a tree or recursing: the shapes DecodeEvents accepts are at most
// four levels deep ({"events": [{"labels": {...}}]}), so the caller asks
// for the value it expects next and anything else is refused on the spot.
// It stops at the first byte that decides a refusal, so deep nesting, huge
// numbers and long garbage cost at most one forward scan.
//
// Strings follow RFC 8259: the escapes \" \\ \/ \b \f \n \r \t and \uXXXX;
// a \u surrogate pair becomes its rune, and a lone or mismatched surrogate
// is refused (encoding/json makes it U+FFFD). Raw bytes must be valid UTF-8
// and not control characters.
//
// Every error is an *InputError carrying the event's index and the field
// being read; syntax errors give the byte offset.
type jsonScanner struct {
	b     []byte
	pos   int
	index int      // the event being read, for errors
	field string   // the field being read, for errors
	buf   []byte   // unescaped string content, reused
	arena []byte   // the kept strings of the event being read
	refs  []strRef // where each kept string goes
}

// strRef places a string kept in the arena: the field it belongs to (a
// step for fSteps, a label's key for fLabels, its value at voff), its
// offset and length.
type strRef struct {
	bit      uint32
	off, n   int
	voff, vn int
}

// keep appends v to the arena for the field bit.
func (s *jsonScanner) keep(bit uint32, v []byte) {
	s.refs = append(s.refs, strRef{bit: bit, off: len(s.arena), n: len(v)})
	s.arena = append(s.arena, v...)
}

// keepLabelValue appends the value of the label kept last.
func (s *jsonScanner) keepLabelValue(v []byte) {
	r := &s.refs[len(s.refs)-1]
	r.voff, r.vn = len(s.arena), len(v)
	s.arena = append(s.arena, v...)
}

// fail is a refusal of the current field of the current event.
func (s *jsonScanner) fail(msg string) *InputError {
	return &InputError{Index: s.index, Field: s.field, Message: msg}
}

// syntax is a refusal for bytes that are not JSON, at s.pos.
func (s *jsonScanner) syntax(want string) *InputError {
	if s.pos >= len(s.b) {
		return s.fail(fmt.Sprintf("invalid JSON at byte %d: unexpected end, want %s",
			s.pos, want))
	}
	return s.fail(fmt.Sprintf("invalid JSON at byte %d: unexpected %q, want %s",
		s.pos, s.b[s.pos], want))
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *jsonScanner) peek() byte {
	for s.pos < len(s.b) {
		switch c := s.b[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// expect consumes c, after whitespace.
func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax(fmt.Sprintf("%q", c))
	}
	s.pos++
	return nil
}

// end checks that only whitespace follows the top-level value.
func (s *jsonScanner) end() error {
	s.index, s.field = 0, ""
	if s.peek(); s.pos < len(s.b) {
		return s.syntax("the end after the top-level value")
	}
	return nil
}

// isNull reports whether the literal null starts at s.pos.
func (s *jsonScanner) isNull() bool {
	return len(s.b)-s.pos >= 4 && string(s.b[s.pos:s.pos+4]) == "null"
}

// wrongType refuses the value at s.pos, which is not of the kind wanted:
// "must not be null" for null, msg for any other JSON value, a syntax error
// when no value starts there.
func (s *jsonScanner) wrongType(msg string) error {
	if s.pos >= len(s.b) {
		return s.syntax("a value")
	}
	switch c := s.b[s.pos]; {
	case c == 'n' && s.isNull():
		return s.fail("must not be null")
	case c == '"', c == '{', c == '[', c == '-', c >= '0' && c <= '9',
		c == 't' && len(s.b)-s.pos >= 4 && string(s.b[s.pos:s.pos+4]) == "true",
		c == 'f' && len(s.b)-s.pos >= 5 && string(s.b[s.pos:s.pos+5]) == "false":
		return s.fail(msg)
	}
	return s.syntax("a value")
}

// strSafe marks the bytes a string holds as they are: printable ASCII but
// the quote and the backslash.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads the string starting at s.pos (its opening quote) and returns
// its content, unescaped. The result aliases the body or s.buf: it is valid
// until the next call.
func (s *jsonScanner) str() ([]byte, error) {
	b := s.b
	start := s.pos + 1
	i := start
	for {
		for i < len(b) && strSafe[b[i]] {
			i++
		}
		if i >= len(b) {
			s.pos = i
			return nil, s.syntax("the end of the string")
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return b[start:i], nil
		case c == '\\':
			s.buf = append(s.buf[:0], b[start:i]...)
			return s.strEscaped(i)
		case c < 0x20:
			s.pos = i
			return nil, s.syntax("no control character in a string")
		default:
			n, err := s.rune(i)
			if err != nil {
				return nil, err
			}
			i += n
		}
	}
}

// rune checks the UTF-8 sequence at b[i] and returns its length.
func (s *jsonScanner) rune(i int) (int, error) {
	r, n := utf8.DecodeRune(s.b[i:])
	if r == utf8.RuneError && n == 1 {
		s.pos = i
		return 0, s.fail(fmt.Sprintf("invalid UTF-8 at byte %d", i))
	}
	return n, nil
}

// strEscaped goes on with str from the backslash at b[i], building the
// content in s.buf.
func (s *jsonScanner) strEscaped(i int) ([]byte, error) {
	b := s.b
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return s.buf, nil
		case c == '\\':
			n, err := s.escape(i)
			if err != nil {
				return nil, err
			}
			i += n
		case c < 0x20:
			s.pos = i
			return nil, s.syntax("no control character in a string")
		case c < utf8.RuneSelf:
			s.buf = append(s.buf, c)
			i++
		default:
			n, err := s.rune(i)
			if err != nil {
				return nil, err
			}
			s.buf = append(s.buf, b[i:i+n]...)
			i += n
		}
	}
	s.pos = i
	return nil, s.syntax("the end of the string")
}

// escape appends the character the escape at b[i] stands for to s.buf and
// returns the escape's length.
func (s *jsonScanner) escape(i int) (int, error) {
	b := s.b
	if i+1 >= len(b) {
		s.pos = len(b)
		return 0, s.syntax("an escape")
	}
	var c byte
	switch b[i+1] {
	case '"', '\\', '/':
		c = b[i+1]
	case 'b':
		c = '\b'
	case 'f':
		c = '\f'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 't':
		c = '\t'
	case 'u':
		return s.escapeU(i)
	default:
		s.pos = i + 1
		return 0, s.syntax("an escape")
	}
	s.buf = append(s.buf, c)
	return 2, nil
}

// escapeU handles \uXXXX at b[i], and the low half of a surrogate pair
// right after it. A surrogate that does not pair is refused: encoding/json
// turns it into U+FFFD, so ids differing only there would read as one.
func (s *jsonScanner) escapeU(i int) (int, error) {
	r, ok := hex4(s.b, i)
	if !ok {
		s.pos = i
		return 0, s.syntax(`\u and four hex digits`)
	}
	if !utf16.IsSurrogate(r) {
		s.buf = utf8.AppendRune(s.buf, r)
		return 6, nil
	}
	r2, ok := hex4(s.b, i+6)
	d := utf16.DecodeRune(r, r2)
	if !ok || d == utf8.RuneError {
		s.pos = i
		return 0, s.fail(fmt.Sprintf("unpaired surrogate %s at byte %d", s.b[i:i+6], i))
	}
	s.buf = utf8.AppendRune(s.buf, d)
	return 12, nil
}

// hex4 reads \uXXXX at b[i].
func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 6 || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// text reads a non-empty string value.
func (s *jsonScanner) text() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.wrongType("must be a string")
	}
	v, err := s.str()
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, s.fail("must not be empty")
	}
	return v, nil
}

// int reads an integer in [lo, hi]. Fractions, exponents and values out of
// range are refused without reading more than the digits that decide it.
func (s *jsonScanner) int(lo, hi int) (int, error) {
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, s.wrongType("must be a number")
	}
	b, i := s.b, s.pos
	neg := c == '-'
	if neg {
		i++
	}
	start := i
	var n uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if n > 1<<40 { // past every range; stop before it overflows
			return 0, s.intRange(lo, hi)
		}
		n = n*10 + uint64(b[i]-'0')
	}
	switch {
	case i == start:
		s.pos = i
		return 0, s.syntax("a digit")
	case i-start > 1 && b[start] == '0':
		s.pos = start + 1
		return 0, s.syntax("no leading zero")
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, s.intRange(lo, hi)
	}
	v := int64(n)
	if neg {
		v = -v
	}
	if v < int64(lo) || v > int64(hi) {
		return 0, s.intRange(lo, hi)
	}
	s.pos = i
	return int(v), nil
}

func (s *jsonScanner) intRange(lo, hi int) error {
	return s.fail(fmt.Sprintf("must be an integer from %d to %d", lo, hi))
}

// next consumes the ',' or the closing byte that follows an item of an
// object or array, and reports whether more items follow.
func (s *jsonScanner) next(closing byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case closing:
		s.pos++
		return false, nil
	}
	return false, s.syntax(fmt.Sprintf("',' or %q", closing))
}

// key reads an object's key and the colon after it.
func (s *jsonScanner) key() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.syntax("a field name")
	}
	k, err := s.str()
	if err != nil {
		return nil, err
	}
	if err := s.expect(':'); err != nil {
		return nil, err
	}
	return k, nil
}
