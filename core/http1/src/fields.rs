//! Header fields in one byte arena: a request's fields cost two
//! allocations (the arena and the index), not two per field as in a
//! `HeaderMap`, and modules read them as borrowed slices. Names are kept
//! in lower case, which is what modules compare against.
//!
//! A removed field leaves its bytes in the arena; a request is short-lived
//! and the arena is freed with it.

use std::ops::Range;

#[derive(Default)]
pub struct Fields {
    text: Vec<u8>,
    entries: Vec<Entry>,
}

/// A field's byte offsets in the arena: the name from `start` to
/// `name_end`, the value from there to `end`. `repr(C)`: the server lends
/// these to modules as they are (`modproxy_api::abi::AbiFieldSpan`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Entry {
    pub start: u32,
    pub name_end: u32,
    pub end: u32,
}

/// A span of the arena holding text that is not a field (the request
/// line's pieces), so a request head lives in one allocation.
pub type Span = Range<u32>;

impl Fields {
    pub fn with_capacity(bytes: usize, fields: usize) -> Fields {
        Fields {
            text: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(fields),
        }
    }

    /// Keeps `bytes` in the arena, for [`Fields::text`].
    pub fn store(&mut self, bytes: &[u8]) -> Span {
        let start = self.text.len() as u32;
        self.text.extend_from_slice(bytes);
        start..self.text.len() as u32
    }

    pub fn text(&self, span: &Span) -> &[u8] {
        &self.text[span.start as usize..span.end as usize]
    }

    /// Adds a field after the others with that name. The caller has
    /// checked both with [`valid_name`] and [`valid_value`].
    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let start = self.text.len() as u32;
        // Copied and lowered in one pass.
        self.text.extend(name.iter().map(u8::to_ascii_lowercase));
        let name_end = self.text.len() as u32;
        self.text.extend_from_slice(value);
        self.entries.push(Entry {
            start,
            name_end,
            end: self.text.len() as u32,
        });
    }

    /// Replaces every field of that name with one.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        self.remove(name);
        self.append(name, value);
    }

    pub fn remove(&mut self, name: &[u8]) {
        let text = &self.text;
        self.entries
            .retain(|e| !same_name(&text[e.start as usize..e.name_end as usize], name));
    }

    /// The first value of a field (case-insensitive name).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let text = &self.text[..];
        self.entries
            .iter()
            .find(|e| same_name(&text[e.start as usize..e.name_end as usize], name))
            .map(|e| &text[e.name_end as usize..e.end as usize])
    }

    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| same_name(n, name))
            .map(|(_, v)| v)
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// The arena and the fields' offsets in it, to lend both at once.
    pub fn raw_parts(&self) -> (&[u8], &[Entry]) {
        (&self.text, &self.entries)
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (name, value) in order; names in lower case.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().map(|e| {
            (
                &self.text[e.start as usize..e.name_end as usize],
                &self.text[e.name_end as usize..e.end as usize],
            )
        })
    }
}

/// `stored` (lower case) against a name in any case; modules mostly ask
/// in lower case, which a plain comparison settles first.
fn same_name(stored: &[u8], name: &[u8]) -> bool {
    stored.len() == name.len() && (stored == name || crate::eq_lower(name, stored))
}

/// A field name: an RFC 9110 token.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TOKEN[b as usize])
}

/// A field value: no CR, LF or NUL (which would split or end the head),
/// nor other control bytes but HTAB.
pub fn valid_value(value: &[u8]) -> bool {
    // Eight bytes at a time while none is suspect; a word that holds a
    // control byte (a tab, most likely) is settled byte by byte.
    let mut words = value.chunks_exact(8);
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if may_hold_control(word) && !word.to_le_bytes().iter().all(|&b| VALUE[b as usize]) {
            return false;
        }
    }
    words.remainder().iter().all(|&b| VALUE[b as usize])
}

/// Whether some byte of `word` is below 0x20 or is 0x7f. Exact: the
/// borrow trick (Bit Twiddling Hacks' `hasless`) can mark a byte wrongly
/// only above one that really is below.
fn may_hold_control(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let del = word ^ (ONES * 0x7f);
    let is_del = del.wrapping_sub(ONES) & !del & HIGH;
    below_space | is_del != 0
}

/// Byte tables: every field a module sets is checked, so one load per
/// byte rather than a chain of comparisons.
static TOKEN: [bool; 256] = byte_table(false);
static VALUE: [bool; 256] = byte_table(true);

const fn byte_table(value: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if value {
            (b >= 0x20 && b != 0x7f) || b == b'\t'
        } else {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        };
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case_and_keep_their_order() {
        let mut f = Fields::default();
        f.append(b"Set-Cookie", b"a=1");
        f.append(b"Content-Type", b"text/plain");
        f.append(b"set-cookie", b"b=2");
        assert_eq!(f.get(b"SET-COOKIE"), Some(&b"a=1"[..]));
        assert_eq!(
            f.get_all(b"set-cookie").collect::<Vec<_>>(),
            [b"a=1", b"b=2"]
        );
        let names: Vec<_> = f.iter().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names, [&b"set-cookie"[..], b"content-type", b"set-cookie"]);
    }

    #[test]
    fn set_replaces_all_and_remove_leaves_the_rest() {
        let mut f = Fields::default();
        f.append(b"Via", b"1");
        f.append(b"Host", b"x");
        f.append(b"Via", b"2");
        f.set(b"via", b"3");
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [(&b"host"[..], &b"x"[..]), (b"via", b"3")]
        );
        f.remove(b"HOST");
        assert_eq!(f.iter().count(), 1);
        assert!(!f.contains(b"host"));
    }

    #[test]
    fn the_word_at_a_time_check_agrees_with_the_table_at_every_position() {
        for bad in 0u8..=255 {
            for at in 0..20 {
                let mut value = *b"text/html; charset=x";
                value[at] = bad;
                let expected = value.iter().all(|&b| VALUE[b as usize]);
                assert_eq!(valid_value(&value), expected, "byte {bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn values_that_would_split_a_head_are_refused() {
        assert!(valid_value(b"text/html; charset=utf-8\t"));
        assert!(!valid_value(b"a\r\nInjected: 1"));
        assert!(!valid_value(b"a\0b"));
        assert!(valid_name(b"X-Forwarded-For"));
        assert!(!valid_name(b"Bad Name"));
        assert!(!valid_name(b""));
    }
}
