//! A fast reader for the shape almost every vendor record has: one flat JSON object whose
//! values are strings without escapes, plain numbers (no exponent, at most 19 digits),
//! `true`, `false` or `null`. For anything else (escapes, nested values, exponents, long
//! numbers, malformed text or UTF-8) it answers `None`, "not sure", and the caller parses
//! with serde_json, which then owns every error message. Where it answers, it answers
//! exactly as serde_json (with `float_roundtrip`) does; a property test in `decode::json`
//! holds the two to that.

/// A number as serde_json's parser classifies it before any visitor sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Number {
    /// What serde's `f64` (and citysense's measured-value) visitors make of it.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::U64(v) => v as f64,
            Number::I64(v) => v as f64,
            Number::F64(v) => v,
        }
    }
}

/// A number checked against the grammar this reader takes, not yet converted: a member
/// that is only type-checked (a coordinate nobody reads) costs no conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberText<'a> {
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, at most 19 digits.
    text: &'a str,
    /// The digits without the point, as one integer (exact: at most 19 digits).
    digits: u64,
    fraction_digits: usize,
    negative: bool,
}

impl NumberText<'_> {
    /// The number as serde_json classifies and converts it. A decimal is correctly rounded,
    /// as serde_json does with its `float_roundtrip` feature (on in Cargo.toml).
    pub fn value(self) -> Number {
        let NumberText { text, digits, fraction_digits, negative } = self;
        if fraction_digits > 0 && digits < 1 << 53 {
            // Both operands exact, so the one division is correctly rounded (vendors' usual
            // few decimals).
            let magnitude = digits as f64 / POW10[fraction_digits];
            Number::F64(if negative { -magnitude } else { magnitude })
        } else if fraction_digits > 0 {
            // Correctly rounded too (so the shortest text a double prints as reads back as
            // that double). The text is a valid decimal, so the parse cannot fail.
            Number::F64(text.parse().unwrap_or(f64::NAN))
        } else if !negative {
            Number::U64(digits)
        } else {
            // serde_json: a float on `-0` or below i64::MIN.
            let negated = (digits as i64).wrapping_neg();
            if negated >= 0 {
                Number::F64(-(digits as f64))
            } else {
                Number::I64(negated)
            }
        }
    }
}

/// One member's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Number(NumberText<'a>),
    Bool(bool),
    Null,
}

/// Calls `each` with every member of the object `bytes`, in order. `None` when `bytes` is
/// not an object of the simple shape (or not UTF-8), or when `each` says `None` (a value
/// it cannot take without serde_json's verdict: a duplicate field, a wrong type).
///
/// No separate UTF-8 pass: every byte outside a string must be one of JSON's ASCII
/// structural bytes, and a string with a byte above 0x7F is checked on its own.
///
/// The decoders read by `named_members`; this plain form is the tests' view of the scanner.
#[cfg(test)]
pub fn members<'a>(bytes: &'a [u8], each: impl FnMut(&'a str, Value<'a>) -> Option<()>) -> Option<()> {
    member_loop(
        bytes,
        |bytes, at| {
            let (key, after_key) = string(bytes, at)?;
            Some((key, past(bytes, after_key, b':')?))
        },
        each,
    )
}

/// The members a caller reads, by name, in the order vendors usually send them. Where the
/// next name is the expected one and the JSON is compact, it is recognised by one masked
/// 16-byte comparison with `name":`, instead of a scan for its closing quote and a string
/// match; a name out of order (or with whitespace before its colon) is found by the scan.
pub struct Names<F: 'static, const N: usize> {
    fields: [(&'static str, F); N],
    /// `name":` little endian in the low bytes, and the mask of those bytes.
    expected: [(u128, u128); N],
}

impl<F: Copy, const N: usize> Names<F, N> {
    /// Names of at most 14 bytes (`name":` fits 16), without quotes or backslashes.
    pub const fn new(fields: [(&'static str, F); N]) -> Self {
        let mut expected = [(0u128, 0u128); N];
        let mut i = 0;
        while i < N {
            let name = fields[i].0.as_bytes();
            assert!(name.len() <= 14, "a member name of at most 14 bytes");
            let mut pattern = 0u128;
            let mut j = 0;
            while j < name.len() {
                let b = name[j];
                assert!(b >= 0x20 && b < 0x80 && b != b'"' && b != b'\\', "a member name of ASCII text without quotes or escapes");
                pattern |= (b as u128) << (8 * j);
                j += 1;
            }
            pattern |= (b'"' as u128) << (8 * name.len()) | (b':' as u128) << (8 * (name.len() + 1));
            let mask = if name.len() == 14 { u128::MAX } else { (1u128 << (8 * (name.len() + 2))) - 1 };
            expected[i] = (pattern, mask);
            i += 1;
        }
        Names { fields, expected }
    }

    /// Where the value starts when the name at `index` is the one starting at `at` and a
    /// colon follows its closing quote directly.
    #[inline(always)]
    fn expected_at(&self, bytes: &[u8], at: usize, index: usize) -> Option<usize> {
        let (pattern, mask) = *self.expected.get(index)?;
        let word = match bytes.get(at..at + 16) {
            Some(word) => u128::from_le_bytes(word.try_into().ok()?),
            // The last member: fewer than 16 bytes left. Zeros never match a name's bytes.
            None => {
                let rest = bytes.get(at..)?;
                let mut word = [0u8; 16];
                word[..rest.len()].copy_from_slice(rest);
                u128::from_le_bytes(word)
            }
        };
        (word & mask == pattern).then(|| at + self.fields[index].0.len() + 2)
    }

    fn index_of(&self, key: &str) -> Option<usize> {
        self.fields.iter().position(|(name, _)| *name == key)
    }
}

/// `members`, with each name given as its field in `names` (`None`: a name not listed,
/// which serde ignores too).
#[inline]
pub fn named_members<'a, F: Copy, const N: usize>(
    bytes: &'a [u8],
    names: &Names<F, N>,
    each: impl FnMut(Option<F>, Value<'a>) -> Option<()>,
) -> Option<()> {
    let mut next = 0;
    member_loop(
        bytes,
        |bytes, at| {
            if let Some(value_at) = names.expected_at(bytes, at, next) {
                next += 1;
                return Some((Some(names.fields[next - 1].1), value_at));
            }
            let (key, after_key) = string(bytes, at)?;
            let index = names.index_of(key);
            if let Some(index) = index {
                next = index + 1;
            }
            Some((index.map(|i| names.fields[i].1), past(bytes, after_key, b':')?))
        },
        each,
    )
}

/// The object's member loop; `key` reads a name starting at `at` (after its opening quote)
/// and says where its value may start (after the colon).
#[inline(always)]
fn member_loop<'a, K>(
    bytes: &'a [u8],
    mut key: impl FnMut(&'a [u8], usize) -> Option<(K, usize)>,
    mut each: impl FnMut(K, Value<'a>) -> Option<()>,
) -> Option<()> {
    let mut at = past(bytes, 0, b'{')?;
    loop {
        at = past(bytes, at, b'"')?;
        let (name, value_at) = key(bytes, at)?;
        let (value, after_value) = value(bytes, skip_whitespace(bytes, value_at))?;
        each(name, value)?;
        at = skip_whitespace(bytes, after_value);
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    (skip_whitespace(bytes, at + 1) == bytes.len()).then_some(())
}

/// Where `byte` ends, when it is the next byte after any whitespace (compact JSON has
/// none, so the first comparison usually answers).
#[inline(always)]
fn past(bytes: &[u8], at: usize, byte: u8) -> Option<usize> {
    if bytes.get(at) == Some(&byte) {
        return Some(at + 1);
    }
    let at = skip_whitespace(bytes, at);
    (bytes.get(at) == Some(&byte)).then_some(at + 1)
}

/// JSON's four whitespace bytes.
#[inline(always)]
fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
        at += 1;
    }
    at
}

/// The string whose text starts at `start` (after its opening quote), and where the
/// closing quote ends. `None` for escapes and control characters, which serde_json
/// unescapes or refuses, and for text that is not UTF-8.
#[inline(always)]
fn string(bytes: &[u8], start: usize) -> Option<(&str, usize)> {
    let mut at = start;
    // Eight bytes at a time, then byte by byte.
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        let stops = stop_bytes(word);
        if stops != 0 {
            at += (stops.trailing_zeros() / 8) as usize;
            return close_string(bytes, start, at);
        }
        at += 8;
    }
    while !is_stop_byte(*bytes.get(at)?) {
        at += 1;
    }
    close_string(bytes, start, at)
}

#[inline(always)]
fn close_string(bytes: &[u8], start: usize, stop: usize) -> Option<(&str, usize)> {
    match bytes[stop] {
        b'"' => {
            // SAFETY: every byte from `start` to `stop` is ASCII (below the first stop byte,
            // and not one: stop bytes include every byte above 0x7F).
            Some((unsafe { std::str::from_utf8_unchecked(&bytes[start..stop]) }, stop + 1))
        }
        0x80.. => non_ascii_string(bytes, start, stop),
        _ => None,
    }
}

/// The rest of a string with a byte above 0x7F at `from` (area names in Chinese): found
/// byte by byte, then checked as UTF-8. A quote is never part of a multi-byte character.
#[cold]
fn non_ascii_string(bytes: &[u8], start: usize, mut from: usize) -> Option<(&str, usize)> {
    while let Some(&b) = bytes.get(from) {
        match b {
            b'"' => return Some((std::str::from_utf8(&bytes[start..from]).ok()?, from + 1)),
            b'\\' | 0..0x20 => return None,
            _ => from += 1,
        }
    }
    None
}

/// A quote, a backslash, a control character or a byte above 0x7F: where a simple ASCII
/// string stops.
#[inline(always)]
fn is_stop_byte(b: u8) -> bool {
    b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b)
}

/// The high bit of the first byte of `word` (little endian) that `is_stop_byte`; bits
/// above it may be set too ("has zero byte" arithmetic is exact only up to the first one).
#[inline(always)]
fn stop_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // `below` ignores bytes with their high bit set (`& !x`); those are stops themselves.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1) | below(word, 0x20) | (word & HIGHS)
}

#[inline(always)]
fn value(bytes: &[u8], at: usize) -> Option<(Value<'_>, usize)> {
    let literal = |word: &[u8], value: Value<'static>| bytes[at..].starts_with(word).then_some((value, at + word.len()));
    match *bytes.get(at)? {
        b'"' => string(bytes, at + 1).map(|(s, end)| (Value::Str(s), end)),
        b'-' | b'0'..=b'9' => number(bytes, at).map(|(n, end)| (Value::Number(n), end)),
        b't' => literal(b"true", Value::Bool(true)),
        b'f' => literal(b"false", Value::Bool(false)),
        b'n' => literal(b"null", Value::Null),
        _ => None,
    }
}

/// Exact powers of ten (every one up to 1e22 is a double).
const POW10: [f64; 20] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19];

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` of at most 19 digits; exponents and longer numbers go
/// to serde_json.
#[inline(always)]
fn number(bytes: &[u8], start: usize) -> Option<(NumberText<'_>, usize)> {
    let negative = bytes[start] == b'-';
    let integer_start = start + usize::from(negative);
    let (mut digits, mut at) = decimal_digits(bytes, integer_start, 0);
    let integer_digits = at - integer_start;
    if integer_digits == 0 || (integer_digits > 1 && bytes[integer_start] == b'0') {
        return None;
    }
    let mut fraction_digits = 0;
    if bytes.get(at) == Some(&b'.') {
        (digits, at) = decimal_digits(bytes, at + 1, digits);
        fraction_digits = at - (integer_start + integer_digits + 1);
        if fraction_digits == 0 {
            return None;
        }
    }
    // More than 19 digits may have wrapped; serde_json reads those another way.
    if integer_digits + fraction_digits > 19 || matches!(bytes.get(at), Some(b'e' | b'E')) {
        return None;
    }
    // SAFETY: `bytes[start..at]` is ASCII: a sign, digits and a point, all checked above.
    let text = unsafe { std::str::from_utf8_unchecked(&bytes[start..at]) };
    Some((NumberText { text, digits, fraction_digits, negative }, at))
}

/// Appends the decimal digits from `at` to `digits` (wrapping past 19 digits; the caller
/// counts), eight at a time where it can; and where they end.
#[inline(always)]
fn decimal_digits(bytes: &[u8], mut at: usize, mut digits: u64) -> (u64, usize) {
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let Some(eight) = eight_digits(word) else { break };
        digits = digits.wrapping_mul(100_000_000).wrapping_add(eight);
        at += 8;
    }
    while let Some(&c @ b'0'..=b'9') = bytes.get(at) {
        digits = digits.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        at += 1;
    }
    (digits, at)
}

/// The value of eight ASCII digits read little endian, or `None` if any byte is not one
/// (the SWAR conversion of simdjson and fast_float).
#[inline(always)]
fn eight_digits(word: u64) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let all_digits = (word & 0xF0F0_F0F0_F0F0_F0F0) == ZEROS && (word.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == ZEROS;
    if !all_digits {
        return None;
    }
    let mut v = word - ZEROS;
    v = v.wrapping_mul(10).wrapping_add(v >> 8);
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    Some(((v & MASK).wrapping_mul(MUL1).wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2))) >> 32)
}

/// Stores a member's value, once: a second member of the same name is serde_json's
/// "duplicate field" error, so `None`.
#[inline(always)]
pub fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member's value with its number converted, to compare.
    #[derive(Debug, PartialEq)]
    enum Converted<'a> {
        Str(&'a str),
        Number(Number),
        Bool(bool),
        Null,
    }

    fn all(text: &str) -> Option<Vec<(&str, Converted<'_>)>> {
        let mut out = Vec::new();
        members(text.as_bytes(), |k, v| {
            out.push((
                k,
                match v {
                    Value::Str(s) => Converted::Str(s),
                    Value::Number(n) => Converted::Number(n.value()),
                    Value::Bool(b) => Converted::Bool(b),
                    Value::Null => Converted::Null,
                },
            ));
            Some(())
        })?;
        Some(out)
    }

    #[test]
    fn simple_objects_are_read() {
        let got = all(" {\"a\" : \"x y\", \"b\":-12,\"c\":0.25 ,\"d\":true,\"e\":null,\"f\":false}\n").unwrap();
        assert_eq!(
            got,
            [
                ("a", Converted::Str("x y")),
                ("b", Converted::Number(Number::I64(-12))),
                ("c", Converted::Number(Number::F64(0.25))),
                ("d", Converted::Bool(true)),
                ("e", Converted::Null),
                ("f", Converted::Bool(false)),
            ]
        );
    }

    #[test]
    fn named_members_are_found_in_order_out_of_order_and_with_whitespace() {
        static NAMES: Names<u64, 3> = Names::new([("a", 1), ("bb", 2), ("fourteen_bytes", 3)]);
        // Each listed member's value is its field; unlisted members hold 9.
        fn fields(text: &str) -> Option<Vec<(Option<u64>, Value<'_>)>> {
            let mut out = Vec::new();
            named_members(text.as_bytes(), &NAMES, |field, value| {
                out.push((field, value));
                Some(())
            })?;
            Some(out)
        }
        for text in [
            "{\"a\":1,\"bb\":2,\"fourteen_bytes\":3}",
            "{\"fourteen_bytes\":3,\"bb\":2,\"a\":1}",
            "{ \"a\" : 1 ,\"bb\" :2,\n\"fourteen_bytes\":\t3 }",
            "{\"a\":1,\"ab\":9,\"b\":9,\"bbb\":9,\"bb\":2,\"fourteen_bytesx\":9,\"fourteen_byte\":9,\"fourteen_bytes\":3}",
            "{\"bb\":2}",
            "{\"a\":1}",
        ] {
            let members = fields(text).unwrap_or_else(|| panic!("{text}"));
            for (field, value) in members {
                let Value::Number(n) = value else { panic!("{text}: {value:?}") };
                assert_eq!(n.value(), Number::U64(field.unwrap_or(9)), "{text}");
            }
        }
        assert_eq!(fields("{\"a\":1,\"bb\":2,\"fourteen_bytes\":3}").unwrap().len(), 3);
        // The scan's verdicts stand whether or not a name was expected.
        for text in ["{\"a\":1,\"bb\":2", "{\"a\":1,\"b\\u0062\":2}", "{\"a\":1 \"bb\":2}", "{\"a\"1}"] {
            assert_eq!(fields(text), None, "{text}");
        }
    }

    #[test]
    fn strings_beyond_ascii_are_read_when_they_are_utf8() {
        let got = all("{\"street\":\"海淀区中关村街道\",\"b\":\"µ\"}").unwrap();
        assert_eq!(got, [("street", Converted::Str("海淀区中关村街道")), ("b", Converted::Str("µ"))]);
        // Not UTF-8, inside a string or outside: serde_json's verdict.
        for bytes in
            [&b"{\"a\":\"\xff\"}"[..], b"{\"a\":\"\xe6\xb5\"}", b"{\"a\":1}\xc2\xa0", b"{\"\xe6\xb5\xb7\":1,\"b\":\"\xed\xa0\x80\"}"]
        {
            assert_eq!(members(bytes, |_, _| Some(())), None, "{bytes:?}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde_json() {
        for text in [
            "{}",
            "{\"a\":\"x\\\"y\"}",
            "{\"a\":[1]}",
            "{\"a\":{}}",
            "{\"a\":1e5}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":12345678901234567890}",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "{\"a\":tru}",
            "{\"a\":\"tab\there\"}",
            "[1]",
            "{\"a\":1",
        ] {
            assert_eq!(all(text), None, "{text}");
        }
    }

    #[test]
    fn eight_digits_at_a_time_and_stop_bytes_agree_with_the_byte_loops() {
        for text in ["00000000", "12345678", "99999999", "1234567a", "/2345678", ":2345678", "1234.678"] {
            let word = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            let expected = text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse::<u64>().unwrap());
            assert_eq!(eight_digits(word), expected, "{text}");
        }
        for text in [
            "abcdefgh",
            "abc\"efgh",
            "\\bcdefgh",
            "abcdefg\u{1f}",
            "a\"\\\"\\\"\\\"",
            "µ海淀ab",
            "abcdefé",
            "ab\u{7f}cdefg",
            "ab\u{1f}海淀",
        ] {
            let word = u64::from_le_bytes(text.as_bytes()[..8].try_into().unwrap());
            let first = text.bytes().position(is_stop_byte).map(|i| i as u32);
            let found = Some(stop_bytes(word)).filter(|&m| m != 0).map(|m| m.trailing_zeros() / 8);
            assert_eq!(found, first, "{text:?}");
        }
    }

    #[test]
    fn numbers_are_classified_as_serde_json_classifies_them() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "18446744073709551615",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            "-41.537281938472",
            "3.0000000000000000001",
            "1234567890.123456789",
            "12345678.5",
            "0.0000000123456789",
            "-12345678901234567",
        ] {
            let object = format!("{{\"n\":{text}}}");
            let ours = all(&object).map(|mut m| m.remove(0).1);
            let theirs = match serde_json::from_str::<serde_json::Number>(text).unwrap() {
                n if n.is_u64() => Number::U64(n.as_u64().unwrap()),
                n if n.is_i64() => Number::I64(n.as_i64().unwrap()),
                n => Number::F64(n.as_f64().unwrap()),
            };
            if let Some(Converted::Number(ours)) = ours {
                assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{text}");
            } else {
                assert!(text.bytes().filter(u8::is_ascii_digit).count() > 19, "{text} should be read: {ours:?}");
            }
        }
    }
}
