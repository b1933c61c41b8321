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

/// prost's limit on nested groups.
const RECURSION_LIMIT: u32 = 100;

/// One field's payload, by wire type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32,
    /// A (deprecated) group, already skipped.
    Group,
}

impl<'a> Value<'a> {
    pub fn string(self) -> Result<&'a str, WireError> {
        match self {
            Value::Bytes(bytes) => super::utf8(bytes).ok_or(WireError("invalid string value: data is not UTF-8 encoded")),
            _ => Err(WireError("invalid wire type for a string field")),
        }
    }

    pub fn varint(self) -> Result<u64, WireError> {
        match self {
            Value::Varint(value) => Ok(value),
            _ => Err(WireError("invalid wire type for an integer field")),
        }
    }

    pub fn double(self) -> Result<f64, WireError> {
        match self {
            Value::Fixed64(bytes) => Ok(f64::from_le_bytes(bytes)),
            _ => Err(WireError("invalid wire type for a double field")),
        }
    }
}

/// Calls `each` with every (field number, value) of one message, in the order they were
/// written; stops at the first error, the reader's or `each`'s.
pub fn for_each_field<'a>(bytes: &'a [u8], mut each: impl FnMut(u32, Value<'a>) -> Result<(), WireError>) -> Result<(), WireError> {
    let mut fields = Fields { rest: bytes };
    while let Some((field, value)) = fields.next_field()? {
        each(field, value)?;
    }
    Ok(())
}

/// The fields of one message not read yet.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The next (field number, value); `None` at the end of the message.
    #[inline(always)]
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (field, wire_type) = self.key()?;
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(self.take(8)?.try_into().map_err(|_| WireError("buffer underflow"))?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError("buffer underflow"))?;
                Value::Bytes(self.take(len)?)
            }
            3 => {
                self.skip_group(field, RECURSION_LIMIT)?;
                Value::Group
            }
            4 => return Err(WireError("unexpected end group tag")),
            _ => {
                self.take(4)?;
                Value::Fixed32
            }
        };
        Ok(Some((field, value)))
    }

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

    fn varint_slow(&mut self) -> Result<u64, WireError> {
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

    /// Skips the rest of the group opened by `field`, through its end tag.
    fn skip_group(&mut self, field: u32, depth: u32) -> Result<(), WireError> {
        if depth == 0 {
            return Err(WireError("recursion limit reached"));
        }
        loop {
            let (inner, wire_type) = self.key()?;
            match wire_type {
                0 => drop(self.varint()?),
                1 => drop(self.take(8)?),
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| WireError("buffer underflow"))?;
                    self.take(len)?;
                }
                3 => self.skip_group(inner, depth - 1)?,
                4 if inner == field => return Ok(()),
                4 => return Err(WireError("unexpected end group tag")),
                _ => drop(self.take(4)?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_take_the_ascii_fast_path_and_still_accept_and_refuse_like_utf8() {
        for text in ["", "hd-pm-0042", "ug/m3", "海淀区", "µg/m³", "a\u{10FFFF}b"] {
            assert_eq!(Value::Bytes(text.as_bytes()).string(), Ok(text));
        }
        for bytes in [&b"\xff"[..], b"hd-\xc3", b"\xed\xa0\x80", b"ok\x80ok"] {
            assert!(Value::Bytes(bytes).string().is_err(), "{bytes:?}");
        }
    }
}
