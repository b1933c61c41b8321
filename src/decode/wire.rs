//! A protobuf wire-format reader that borrows: string fields come back as `&str` slices of
//! the record, so decoding a reading copies no text. It accepts and refuses exactly what
//! prost's generated decoders do for the flat messages citysense reads (scalar and string
//! fields, unknown fields and groups skipped, last value wins); a property test in
//! `decode::protobuf` holds the two to that.

/// Why bytes are not a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Bit k is set when byte k is a whole, valid key other than an end-group tag: field 1 to
/// 15 (k >> 3 ≠ 0), wire type 0, 1, 2, 3 or 5 (k & 7).
const VALID_ONE_BYTE_KEYS: u128 = {
    let mut keys = 0u128;
    let mut k = 8;
    while k < 128 {
        if matches!(k & 7, 0 | 1 | 2 | 3 | 5) {
            keys |= 1 << k;
        }
        k += 1;
    }
    keys
};

/// prost's limit on nested groups.
const RECURSION_LIMIT: u32 = 100;

/// A message read in place, field by field, with no value built per field: `key` gives the
/// next (field number, wire type), then the caller reads the payload with the read its
/// schema expects, or `skip`s it. A payload of another wire type than the
/// field's is read past (its own errors first), then refused, as prost refuses it.
pub struct Reader<'a>(Fields<'a>);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader(Fields { rest: bytes })
    }

    /// The next field's (number, wire type); `None` at the end of the message.
    #[inline(always)]
    pub fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        let Some(&first) = self.0.rest.first() else { return Ok(None) };
        // Fields 1 to 15 have one-byte keys: one bit test for all the checks below.
        if first < 0x80 && (VALID_ONE_BYTE_KEYS >> first) & 1 == 1 {
            self.0.rest = &self.0.rest[1..];
            return Ok(Some((u32::from(first >> 3), first & 7)));
        }
        match self.0.key()? {
            (_, 4) => Err(WireError("unexpected end group tag")),
            key => Ok(Some(key)),
        }
    }

    /// Takes the next key when it is `key` (a field from 1 to 15): one byte compare, for a
    /// reader that looks for the fields where encoders put them, in number order.
    #[inline(always)]
    pub fn next_key_is(&mut self, (field, wire_type): (u32, u8)) -> bool {
        debug_assert!((1..16).contains(&field) && wire_type != 4);
        let found = self.0.rest.first() == Some(&((field << 3) as u8 | wire_type));
        if found {
            self.0.rest = &self.0.rest[1..];
        }
        found
    }

    #[inline(always)]
    pub fn string(&mut self, (field, wire_type): (u32, u8)) -> Result<&'a str, WireError> {
        if wire_type != 2 {
            return self.refuse((field, wire_type), "invalid wire type for a string field");
        }
        super::utf8(self.0.bytes()?).ok_or(WireError("invalid string value: data is not UTF-8 encoded"))
    }

    /// A length-delimited payload: an embedded message, read with a `Reader` of its own.
    #[inline(always)]
    pub fn message(&mut self, (field, wire_type): (u32, u8)) -> Result<Reader<'a>, WireError> {
        if wire_type != 2 {
            return self.refuse((field, wire_type), "invalid wire type for a message field");
        }
        Ok(Reader::new(self.0.bytes()?))
    }

    #[inline(always)]
    pub fn varint(&mut self, (field, wire_type): (u32, u8)) -> Result<u64, WireError> {
        if wire_type != 0 {
            return self.refuse((field, wire_type), "invalid wire type for an integer field");
        }
        self.0.varint()
    }

    #[inline(always)]
    pub fn double(&mut self, (field, wire_type): (u32, u8)) -> Result<f64, WireError> {
        if wire_type != 1 {
            return self.refuse((field, wire_type), "invalid wire type for a double field");
        }
        let bytes: [u8; 8] = self.0.take(8)?.try_into().map_err(|_| WireError("buffer underflow"))?;
        Ok(f64::from_le_bytes(bytes))
    }

    /// Reads past a field nobody asked for.
    pub fn skip(&mut self, (field, wire_type): (u32, u8)) -> Result<(), WireError> {
        self.0.skip(field, wire_type, RECURSION_LIMIT)
    }

    #[cold]
    fn refuse<T>(&mut self, key: (u32, u8), why: &'static str) -> Result<T, WireError> {
        self.skip(key)?;
        Err(WireError(why))
    }
}

/// The fields of one message not read yet.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = u32::try_from(self.varint()?).map_err(|_| WireError("invalid key value"))?;
        let wire_type = (key & 7) as u8;
        if wire_type > 5 {
            return Err(WireError("invalid wire type value"));
        }
        let field = key >> 3;
        if field == 0 {
            return Err(WireError("invalid tag value: 0"));
        }
        Ok((field, wire_type))
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Keys and small numbers are one byte.
        if let Some((&byte, rest)) = self.rest.split_first() {
            if byte < 0x80 {
                self.rest = rest;
                return Ok(u64::from(byte));
            }
        }
        self.varint_slow()
    }

    /// A varint of more than one byte. With 8 bytes left (every field but a message's last
    /// few), one that ends within them (up to 2^56: timestamps in ms, sequence numbers) is
    /// read from one word load, its 7-bit groups packed together in three steps.
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        if let Some(word) = self.rest.first_chunk::<8>().map(|w| u64::from_le_bytes(*w)) {
            let ends = !word & 0x8080_8080_8080_8080;
            if ends != 0 {
                let len = ends.trailing_zeros() as usize / 8 + 1;
                // The groups of the varint's bytes; the bytes after it cleared.
                let mut x = word & 0x7f7f_7f7f_7f7f_7f7f & (u64::MAX >> (64 - 8 * len));
                x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
                x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
                x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
                self.rest = &self.rest[len..];
                return Ok(x);
            }
        }
        self.varint_bytewise()
    }

    fn varint_bytewise(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.rest.split_first().ok_or(WireError("invalid varint"))?;
            self.rest = rest;
            if i == 9 && byte > 1 {
                return Err(WireError("invalid varint"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError("invalid varint"))
    }

    #[inline(always)]
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.rest.len() {
            return Err(WireError("buffer underflow"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// A length-delimited payload.
    #[inline(always)]
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(self.varint()?).map_err(|_| WireError("buffer underflow"))?;
        self.take(len)
    }

    /// Reads past one payload of `wire_type` (never an end-group tag; callers handle it): a
    /// group through its end tag, nested at most `depth` deep.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<(), WireError> {
        match wire_type {
            0 => drop(self.varint()?),
            1 => drop(self.take(8)?),
            2 => drop(self.bytes()?),
            3 => self.skip_group(field, depth)?,
            _ => drop(self.take(4)?),
        }
        Ok(())
    }

    /// Skips the rest of the group opened by `field`, through its end tag.
    fn skip_group(&mut self, field: u32, depth: u32) -> Result<(), WireError> {
        if depth == 0 {
            return Err(WireError("recursion limit reached"));
        }
        loop {
            match self.key()? {
                (inner, 4) if inner == field => return Ok(()),
                (_, 4) => return Err(WireError("unexpected end group tag")),
                (inner, wire_type) => self.skip(inner, wire_type, depth - 1)?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field 1 as a length-delimited payload.
    fn string_field(bytes: &[u8]) -> Result<String, WireError> {
        let mut message = vec![0x0a, bytes.len() as u8];
        message.extend_from_slice(bytes);
        let mut reader = Reader::new(&message);
        let key = reader.key()?.expect("one field");
        reader.string(key).map(str::to_owned)
    }

    #[test]
    fn strings_take_the_ascii_fast_path_and_still_accept_and_refuse_like_utf8() {
        for text in ["", "hd-pm-0042", "ug/m3", "海淀区", "µg/m³", "a\u{10FFFF}b"] {
            assert_eq!(string_field(text.as_bytes()).as_deref(), Ok(text));
        }
        for bytes in [&b"\xff"[..], b"hd-\xc3", b"\xed\xa0\x80", b"ok\x80ok"] {
            assert!(string_field(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn varints_read_from_a_word_match_the_bytewise_reading_at_every_length() {
        let mut values = vec![0u64, 1, 127, 128, 300, 1_795_593_600_000, u64::MAX, 1 << 56, (1 << 56) - 1, (1 << 49) + 5];
        values.extend((0..64).map(|bit| 1u64 << bit));
        values.extend((0..64).map(|bit| (1u64 << bit).wrapping_sub(1) ^ 0x5555_5555_5555_5555));
        for value in values {
            let mut encoded = Vec::new();
            prost::encoding::encode_varint(value, &mut encoded);
            for trailing in [0, 3, 8, 12] {
                let mut bytes = encoded.clone();
                bytes.extend(std::iter::repeat_n(0xff, trailing));
                let (mut by_word, mut bytewise) = (Fields { rest: &bytes }, Fields { rest: &bytes });
                assert_eq!(by_word.varint(), Ok(value), "{value} + {trailing} bytes");
                assert_eq!(bytewise.varint_bytewise(), Ok(value));
                assert_eq!(by_word.rest.len(), trailing, "{value}: the varint's bytes taken, no more");
            }
            // Cut short, it is an error either way.
            let cut = &encoded[..encoded.len() - 1];
            assert!(cut.is_empty() || Fields { rest: cut }.varint().is_err());
        }
        // Eleven continuation bytes: not a varint.
        assert!(Fields { rest: &[0xff; 12] }.varint().is_err());
    }

    #[test]
    fn a_payload_of_another_wire_type_is_read_past_then_refused() {
        // Field 1 as a varint (150), then field 2 as a string.
        let mut reader = Reader::new(&[0x08, 0x96, 0x01, 0x12, 0x01, b'x']);
        let key = reader.key().unwrap().unwrap();
        assert_eq!(reader.string(key), Err(WireError("invalid wire type for a string field")));
        // A truncated payload fails on its own error first.
        let mut reader = Reader::new(&[0x09, 0x01]);
        let key = reader.key().unwrap().unwrap();
        assert_eq!(reader.string(key), Err(WireError("buffer underflow")));
    }
}
